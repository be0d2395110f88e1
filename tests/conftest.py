"""Shared fixtures: keep the developer's own config out of tests; gate privileged tests.

Privileged tests (marker `privileged`) need root, `ip`, iptables and conntrack. A skipped test
is untested code, so every skip fails the run, whatever the environment, unless its reason
starts with "kernel lacks" (a feature this machine's kernel does not have). `--allow-skips`
relaxes this for a contributor running a subset without root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.netns import NetNS, have_privileges


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # the history store: under the test's home, also for bwmon run as root (not /var/lib)
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    for var in list(os.environ):
        if var.startswith("BWMON_"):
            monkeypatch.delenv(var)


def pytest_configure(config: pytest.Config) -> None:
    """A home for the whole run, set before test modules are imported: a module that copies
    os.environ at import (ENV = {**os.environ, ...}) hands its bwmon this one, so no bwmon a
    test starts reads the developer's config or writes its history store under /var/lib or
    ~/.local/state. Each test still gets its own home from `_isolated_config`."""
    home = Path(tempfile.mkdtemp(prefix="bwmon-tests-home-"))
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    os.environ["HOME"] = str(home)
    os.environ["XDG_CONFIG_HOME"] = str(home / ".config")
    os.environ["XDG_STATE_HOME"] = str(home / ".local" / "state")
    os.environ.pop("STATE_DIRECTORY", None)
    config.stash[_SYSTEM_STORE_KEY] = _stamp(SYSTEM_STORE)


SYSTEM_STORE = Path("/var/lib/bwmon/history.sqlite")  # root's default history store
_SYSTEM_STORE_KEY = pytest.StashKey["int | None"]()


def _stamp(path: Path) -> int | None:
    """When the file was last written (None: there is none)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that let bwmon write root's own history store fails the run: tests write nothing
    outside the repository and their temporary directories."""
    before = session.config.stash.get(_SYSTEM_STORE_KEY, None)
    if _stamp(SYSTEM_STORE) not in (None, before):
        session.config.get_terminal_writer().line(
            f"\nerror: a test let bwmon write {SYSTEM_STORE} (a bwmon started with an environment"
            " that bypassed the test home)", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "privileged" not in item.keywords:
        return
    reason = have_privileges()
    if reason is None:
        return
    pytest.skip(reason)


# A skip would hide untested code: it fails instead, except where the machine's kernel lacks a
# feature (the skip reason then starts with this, and pytest's summary reports it).
ALLOWED_SKIP = "kernel lacks"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--allow-skips", action="store_true",
                     help="let skipped tests pass (default: a skip fails unless the kernel "
                          "lacks a feature)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if (not report.skipped or hasattr(report, "wasxfail")
            or item.config.getoption("--allow-skips")):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if ALLOWED_SKIP not in reason:
        report.outcome = "failed"
        report.longrepr = f"skipped, but every test must run (--allow-skips to permit): {reason}"


@pytest.fixture
def netns() -> Iterator[NetNS]:
    """A fresh namespace that tracks flows with accounting on."""
    with NetNS() as ns:
        yield ns


REPO = Path(__file__).resolve().parent.parent
TRAFFIC = str(REPO / "tests" / "helpers" / "traffic.py")
LEGACY = REPO / "tests" / "fixtures" / "legacy"
