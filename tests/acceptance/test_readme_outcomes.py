"""The README's results/cancel/timeouts snippets run as written: the first is the app's ``app/reports.py`` (the
real supervisor's workers import it), the second runs in the app's process."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def snippets() -> list[str]:
    text = README.read_text()
    section = text[text.index("### Results, cancel, timeouts"):]
    section = section[:section.index("\n### ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_snippets_run_as_written(jobs_app: Any) -> None:
    jobs_module, usage = snippets()
    assert jobs_module.startswith("# app/reports.py")
    (jobs_app.root / "app" / "reports.py").write_text(jobs_module)
    (jobs_app.root / "config" / "environment.py").write_text("import app.jobs, app.reports  # noqa: F401\n")
    forget_app_modules()
    proc = jobs_app.start()
    exec(compile(usage, "README.md", "exec"), {})
    code, output = jobs_app.stop(proc, signal.SIGTERM)
    assert code == 0, output


def forget_app_modules() -> None:
    """Another test's app may have been imported as ``app`` already (from its own folder): import this one's."""
    for name in [name for name in sys.modules if name == "app" or name.startswith("app.")]:
        del sys.modules[name]
