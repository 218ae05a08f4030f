"""The README's features snippet runs as written (in a process of its own: it defines job classes and sets the
adapter, as an app would)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def snippet(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- readme-snippet: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README.md has no snippet {name!r}"
    return match.group(1)


def test_the_features_snippet_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(snippet("features"))
    for tracing in ("0", "1"):  # with OpenTelemetry's API installed (dev extra), with and without tracing
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                             cwd=tmp_path, env={**os.environ, "SOLIDSTACK_TRACING": tracing})
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.count("import done: BatchStatus(") == 1, out.stdout
