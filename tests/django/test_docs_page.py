"""The Django page of the docs site (docs/guide/django.md): its snippets run, in a fresh Django project, so the
page cannot drift from the code. Snippets headed ``# settings.py`` are the project's settings (after a base of
BASE_DIR, SECRET_KEY and a SQLite default database); the others run in order, in one namespace, after
``django.setup()``, ``migrate`` and ``check``. (tests/test_docs.py runs every other page's snippets.)"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "guide" / "django.md"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
BASE = '''from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "docs-only"
USE_TZ = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
'''
RUNNER = '''
import os, sys
sys.path.insert(0, os.getcwd())
os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("check")
namespace = {"__name__": "__docs__"}
for index, snippet in enumerate(SNIPPETS):
    try:
        exec(compile(snippet, f"django.md snippet {index + 1}", "exec"), namespace)
    except BaseException:
        print(f"--- django.md, snippet {index + 1}:\\n{snippet}", file=sys.stderr)
        raise
print("ran", len(SNIPPETS))
'''


def test_the_django_page_snippets_run(tmp_path: Path) -> None:
    blocks = [textwrap.dedent(block) for block in FENCE.findall(PAGE.read_text())]
    settings = [b for b in blocks if b.startswith("# settings.py")]
    snippets = [b for b in blocks if not b.startswith("# settings.py")]
    assert settings and len(snippets) >= 3, "the page lost its snippets"
    (tmp_path / "settings.py").write_text(BASE + "\n".join(settings))
    (tmp_path / "run.py").write_text(f"SNIPPETS = {snippets!r}\n{RUNNER}")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ran {len(snippets)}" in result.stdout
