"""Each part's public names, re-exported from its package with ``__all__``, resolve and are not duplicated."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["solidstack", "solidstack.config", "solidstack.db", "solidstack.queue",
                                     "solidstack.cache", "solidstack.cable", "solidstack.dashboard"])
def test_all_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert len(names) == len(set(names)), f"{package}.__all__ lists a name twice"
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not define: {missing}"


def test_the_seed_facing_names() -> None:
    from solidstack.cable import broadcast  # noqa: F401
    from solidstack.cache import cache  # noqa: F401
    from solidstack.queue import Job, discard_on, jobs_lifespan, retry_on  # noqa: F401
