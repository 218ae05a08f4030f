"""The documentation site: it builds with ``mkdocs build --strict`` (a broken link, a missing page or API
reference fails), and every ```python snippet on it runs, so the docs cannot drift from the code.

A page's snippets run in order, in one namespace (a later snippet may use what an earlier one defined), in a
subprocess whose working folder is a fresh app (``solidstack install`` + ``db migrate``, environment
``development``), as a reader would paste them into a shell of their app.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: Pages whose snippets need Django (Python >= 3.12): tests/django/test_docs_page.py runs them in .venv-django.
DJANGO_PAGES = {DOCS / "guide" / "django.md"}
PAGES = sorted(p for p in DOCS.rglob("*.md") if FENCE.search(p.read_text()) and p not in DJANGO_PAGES)

RUNNER = '''
import os, sys
from pathlib import Path

root = Path.cwd()
sys.path.insert(0, str(root))
import solidstack
from solidstack.tasks import install, migrate_all

install(root, "sqlite3")
app = solidstack.configure(root, "development")
migrate_all(app)
namespace = {"__name__": "__docs__"}
for index, snippet in enumerate(SNIPPETS):
    try:
        exec(compile(snippet, f"{PAGE} snippet {index + 1}", "exec"), namespace)
    except BaseException:
        print(f"--- {PAGE}, snippet {index + 1}:\\n{snippet}", file=sys.stderr)
        raise
solidstack.configure(root, "development")  # closes what the snippets opened
print("ran", len(SNIPPETS))
'''


def test_every_page_with_python_is_found() -> None:
    assert len(PAGES) >= 8, PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_python_snippets_run(page: Path, tmp_path: Path) -> None:
    snippets = [textwrap.dedent(block) for block in FENCE.findall(page.read_text())]
    script = tmp_path / "run_snippets.py"
    script.write_text(f"SNIPPETS = {snippets!r}\nPAGE = {str(page.relative_to(DOCS))!r}\n{RUNNER}")
    app = tmp_path / "app"
    app.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SOLIDSTACK_ENV": "development"}
    result = subprocess.run([sys.executable, str(script)], cwd=app, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ran {len(snippets)}" in result.stdout


def test_the_site_builds_strict(docs_site: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, tmp_path = docs_site
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "guide/production/index.html", "reference/cli/index.html",
                 "reference/configuration/index.html", "reference/api/index.html"):
        assert (tmp_path / page).exists(), page
    cli = (tmp_path / "reference/cli/index.html").read_text()
    assert "--log-format" in cli and "solidstack jobs check" in cli  # generated from click
    assert "max_restart_failures" in (tmp_path / "reference/configuration/index.html").read_text()
