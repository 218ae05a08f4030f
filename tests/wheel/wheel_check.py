"""`make wheel-check`: the built artifacts are what is tested.

1. Build the sdist and, from it, the wheel (``python -m build --no-isolation``: the dev venv's setuptools, no
   download) from a copy of the files git tracks, in a fresh temporary folder.
2. ``twine check --strict`` both.
3. Compare the wheel's file list with the package in ``src/``: every file git tracks under ``src/solidstack``
   (SQL, templates, config, the ``py.typed`` marker, ...) must be in the wheel, and the sdist must hold them too.
4. Install the wheel (``--no-deps``, not editable) into a fresh venv whose dependencies come from the dev venv's
   site-packages (a ``.pth`` line: no network, seconds), and run ``tests/wheel/smoke.py`` with its Python.

Exits non-zero naming what is wrong.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "solidstack"


def tracked_package_files() -> list[str]:
    """Files of the package as git tracks them, relative to ``src/`` (``solidstack/queue/sql/...``)."""
    out = subprocess.run(["git", "ls-files", f"src/{PACKAGE}"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return sorted(line.removeprefix("src/") for line in out.splitlines() if line)


def copy_tracked_tree(target: Path) -> None:
    """The files git tracks (as they are in the worktree), copied to ``target``: a build in the worktree would
    read the editable install's ``src/solidstack.egg-info/SOURCES.txt``, which lists every file and so hides a
    file the package data rules leave out, and would leave ``build/`` behind."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    for name in out.splitlines():
        path = ROOT / name
        if path.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


def missing_from(names: set[str], expected: list[str], what: str) -> list[str]:
    return [f"{path} is missing from the {what}" for path in expected if path not in names]


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wheel-check-") as folder:
        work = Path(folder)
        dist, source = work / "dist", work / "source"
        copy_tracked_tree(source)
        subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
                       check=True, stdout=subprocess.DEVNULL)
        (wheel,) = dist.glob(f"{PACKAGE}-*.whl")
        (sdist,) = dist.glob(f"{PACKAGE}-*.tar.gz")
        subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], check=True)

        expected = tracked_package_files()
        problems = []
        if f"{PACKAGE}/py.typed" not in expected:
            problems.append(f"src/{PACKAGE}/py.typed does not exist (PEP 561 marker)")
        with zipfile.ZipFile(wheel) as archive:
            in_wheel = set(archive.namelist())
        problems += missing_from(in_wheel, expected, f"wheel {wheel.name}")
        strays = sorted(n for n in in_wheel if n.startswith(f"{PACKAGE}/") and n not in expected)
        problems += [f"{name} is in the wheel but not tracked in src/ (a stale build?)" for name in strays]
        with tarfile.open(sdist) as archive:
            prefix = archive.getnames()[0].split("/")[0]
            in_sdist = {name.removeprefix(f"{prefix}/src/") for name in archive.getnames()}
        problems += missing_from(in_sdist, expected, f"sdist {sdist.name}")
        if problems:
            print("\n".join(f"wheel-check: {p}" for p in problems), file=sys.stderr)
            return 1

        env_dir = work / "venv"
        venv.create(env_dir, with_pip=False)
        python = env_dir / "bin" / "python"
        target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                     capture_output=True, text=True, check=True).stdout.strip())
        # The wheel goes into the fresh venv; its dependencies are read from the dev venv, after it on sys.path.
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                        "--target", str(target), str(wheel)], check=True)
        (target / "zz_dev_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
        # pip --target writes no console script for the venv's bin/: write the one the wheel declares.
        (env_dir / "bin" / "solidstack").write_text(
            f"#!{python}\nimport sys\nfrom solidstack.cli import main\nsys.exit(main())\n")
        (env_dir / "bin" / "solidstack").chmod(0o755)
        result = subprocess.run([str(python), str(ROOT / "tests" / "wheel" / "smoke.py")], cwd=work, timeout=300)
        if result.returncode != 0:
            return result.returncode
    print(f"wheel-check: {wheel.name} and {sdist.name} ok ({len(expected)} package files, "
          f"{time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
