"""What a package index gets: a complete sdist (every tracked file), and a wheel built from it
that carries the licence (SPDX expression and text), the declared dependencies (textual capped
below its next major, rich declared) and bwmon.toml.example for `bwmon config example`."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

from tests.conftest import REPO

# tracked files an sdist leaves out on purpose
NOT_SHIPPED = {".gitignore"}


def build(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_sdist_is_complete_and_the_wheel_carries_licence_deps_and_example(
        tmp_path: Path) -> None:
    build("--sdist", "--outdir", str(tmp_path))
    (sdist,) = tmp_path.glob("bwmon-*.tar.gz")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        shipped = {n.removeprefix(top + "/") for n in tar.getnames()}
    tracked = set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True,
                                 text=True, check=True).stdout.split())
    assert tracked - shipped - NOT_SHIPPED == set()  # tests, docs, contrib, dev: all of it

    build("--wheel", "--outdir", str(tmp_path / "wheel"), str(sdist))  # from the sdist alone
    (wheel,) = (tmp_path / "wheel").glob("bwmon-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        meta = Parser().parsestr(whl.read(next(n for n in names if n.endswith("/METADATA")))
                                 .decode())
        example = whl.read("bwmon/bwmon.toml.example").decode()
        licence = whl.read(next(n for n in names if n.endswith("/licenses/LICENSE"))).decode()
    assert meta["License-Expression"] == "GPL-2.0-or-later"
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 2, June 1991" in licence
    requires = meta.get_all("Requires-Dist") or []
    assert any(r.startswith("textual") and "<9" in r for r in requires), requires
    assert any(r.startswith("rich>=") for r in requires), requires
    assert example == (REPO / "bwmon.toml.example").read_text()
    assert any(n.endswith(".tcss") for n in names) and "bwmon/http/page.html" in names
    probe = "bwmon/core/sources/bpf/socket_probe.bpf"
    assert {f"{probe}.o", f"{probe}.c"} <= set(names)  # the eBPF object and its source
    assert any(n.endswith(".data/data/share/man/man1/bwmon.1") for n in names), names


def test_config_example_prints_the_shipped_example() -> None:
    done = subprocess.run([sys.executable, "-m", "bwmon", "config", "example"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == (REPO / "bwmon.toml.example").read_text()
