"""``solidstack install`` writes the template files and nothing Python left beside them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from solidstack.tasks import _copy_tree


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_install_skips_bytecode_beside_the_templates(tmp_path: Path) -> None:
    """A copy of the templates with the ``__pycache__`` an installed package has: only the templates are written."""
    templates = tmp_path / "templates"
    shutil.copytree(Path(str(resources.files("solidstack").joinpath("templates"))), templates)
    (templates / "config" / "__pycache__").mkdir()
    (templates / "config" / "__pycache__" / "environment.cpython-311.pyc").write_bytes(b"\x00")
    (templates / "config" / "stray.pyc").write_bytes(b"\x00")
    written: list[Path] = []
    _copy_tree(templates, tmp_path / "app", written, [])
    expected = _files(templates) - {"config/__pycache__/environment.cpython-311.pyc", "config/stray.pyc"}
    assert _files(tmp_path / "app") == expected
    assert {str(path.relative_to(tmp_path / "app")) for path in written} == expected


@pytest.mark.slow
def test_install_from_a_built_wheel_writes_only_template_files(tmp_path: Path) -> None:
    """Build the wheel, install it as pip does (which compiles ``templates/config/environment.py``), run install."""
    # Built from a clean copy: building in the worktree would leave build/ there, whose stale files the next
    # build would put in the wheel.
    repo, source = Path(__file__).resolve().parents[1], tmp_path / "source"
    shutil.copytree(repo / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    wheels, site, app = tmp_path / "wheels", tmp_path / "site", tmp_path / "app"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "-w", str(wheels)], check=True, timeout=300,
                   cwd=tmp_path)
    (wheel,) = wheels.glob("solidstack-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=120)
    assert list((site / "solidstack" / "templates").rglob("*.pyc")), "pip no longer compiles the templates"
    app.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    code = ("import sys, solidstack; assert solidstack.__file__.startswith(sys.argv[1]), solidstack.__file__; "
            "from solidstack.cli import main; sys.argv = ['solidstack', 'install']; main()")
    subprocess.run([sys.executable, "-c", code, str(site)], cwd=app, env=env, check=True, timeout=60)
    written = _files(app)
    assert not [name for name in written if "__pycache__" in name or name.endswith(".pyc")], written
    templates = _files(site / "solidstack" / "templates")
    assert {name for name in templates if not name.endswith(".pyc")} <= written


def test_a_fresh_install_checks_clean_in_production_and_its_recurring_command_runs(tmp_path: Path) -> None:
    """What `solidstack install` writes is a working app in every environment: the production recurring task is
    solidstack's own cleanup (the guide's MagicLinkCleanupJob is the user's to add), and it runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDSTACK_")}
    env.update(SOLIDSTACK_ENV="production", SOLIDSTACK_ROOT=str(tmp_path))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "solidstack", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    assert run("install").returncode == 0
    assert run("db", "migrate").returncode == 0
    check = run("jobs", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    listed = run("recurring", "list")
    assert listed.returncode == 0 and "clear_solidstack_finished_jobs" in listed.stdout, listed.stdout + listed.stderr
    code = ("from solidstack.queue.recurring import load_recurring_tasks, resolve_command\n"
            "from solidstack.config import current_app\n"
            "[task] = load_recurring_tasks(current_app())\n"
            "print(resolve_command(task.command)())\n")
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0 and ran.stdout.strip() == "0", ran.stdout + ran.stderr
