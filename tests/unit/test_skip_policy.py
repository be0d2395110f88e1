"""A skipped test fails the run unless the kernel lacks a feature (tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pkg = pytester.path / "tests"
    (pkg / "helpers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(CONFTEST, pkg / "conftest.py")
    shutil.copytree(CONFTEST.parent / "helpers", pkg / "helpers", dirs_exist_ok=True)
    (pkg / "test_x.py").write_text(
        "import pytest\n"
        "def test_plain_skip():\n    pytest.skip('needs something')\n"
        "def test_kernel_skip():\n    pytest.skip('kernel lacks sock_diag')\n"
        "def test_passes():\n    pass\n"
    )
    # (without hypothesis's plugin: importing it is most of a run's second, and these tests
    # use none of it)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                         str(pkg), *args)


def test_a_skip_fails_but_a_missing_kernel_feature(pytester: pytest.Pytester) -> None:
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*every test must run*needs something*"])


def test_allow_skips_relaxes_the_rule(pytester: pytest.Pytester) -> None:
    run(pytester, "--allow-skips").assert_outcomes(passed=1, skipped=2)
