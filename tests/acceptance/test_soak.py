"""A short run of the chaos soak (``benchmarks/soak.py``): kill -9 and SIGSTOP of workers, kill -9 and TERM of
supervisors, under load, on SQLite. No job lost, none run twice at once, nothing left claimed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def load_soak():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("solidstack_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_short_soak_loses_nothing_and_runs_nothing_twice_at_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The soak configures its app in this process (to enqueue and to read the figures): put everything back.
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SOLIDSTACK_ENV", "test")
    before = set(sys.modules)
    try:
        report = load_soak().soak(15.0, supervisors=2, seed=7, drain_timeout=30.0, folder=tmp_path / "app")
    finally:
        for name in set(sys.modules) - before:
            if name.startswith("solidstack_soak"):
                del sys.modules[name]
    summary = {k: getattr(report, k) for k in ("jobs", "finished", "failed", "lost", "runs", "overlaps",
                                               "claimed_left", "processes_left", "stopped_left", "actions")}
    assert report.jobs > 50, summary
    assert report.lost == 0 and report.overlaps == 0, summary
    assert report.claimed_left == 0 and report.processes_left == 0 and report.stopped_left == 0, summary
    assert report.locked_errors == 0, summary
