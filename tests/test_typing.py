"""The typed public API: the py.typed marker, and mypy --strict over every module that defines a public name."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_PACKAGES = ["solidstack", "solidstack.queue", "solidstack.cache", "solidstack.cable", "solidstack.config",
                   "solidstack.db"]


def public_modules() -> set[str]:
    """The packages and every module defining a name of their ``__all__``."""
    modules = set(PUBLIC_PACKAGES)
    for name in PUBLIC_PACKAGES:
        package = importlib.import_module(name)
        for public in package.__all__:
            module = getattr(getattr(package, public), "__module__", None)
            if module and module.startswith("solidstack"):
                modules.add(module)
    return modules


def test_py_typed_marker_exists() -> None:
    assert (ROOT / "src" / "solidstack" / "py.typed").exists()


def test_mypy_checks_every_module_that_defines_a_public_name() -> None:
    files = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"])
    for module in sorted(public_modules()):
        path = "src/" + module.replace(".", "/")
        assert f"{path}/__init__.py" in files or f"{path}.py" in files, f"{module} is not in [tool.mypy] files"


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
