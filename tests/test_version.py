"""The version lives in pyproject.toml only: the package, `solidstack --version` and the changelog follow it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import solidstack

ROOT = Path(__file__).resolve().parents[1]


def test_version_comes_from_pyproject_through_the_package_metadata() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert solidstack.__version__ == declared
    result = subprocess.run([sys.executable, "-m", "solidstack", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert declared in result.stdout
    assert f"## [{declared}]" in (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()
