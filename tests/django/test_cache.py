"""SolidCache: Django's cache API on the cache database, across processes; Django's own cache test suite runs in
test_django_cache_suite.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from solidstack.cache import current_store
from solidstack.django.cache import SolidCache

HERE = Path(__file__).parent


@pytest.fixture
def cache(project: Path) -> SolidCache:
    c = caches["default"]
    c.clear()
    return c


class Thing:
    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thing) and other.n == self.n


def test_api(cache: SolidCache) -> None:
    cache.set("a", {"x": [1, 2]})
    assert cache.get("a") == {"x": [1, 2]} and cache.get("missing", "d") == "d"
    cache.set("obj", Thing(3))
    assert cache.get("obj") == Thing(3)  # anything picklable, as Django's backends take
    assert cache.add("a", 1) is False and cache.add("b", 1) is True
    assert cache.incr("b", 5) == 6 and cache.decr("b") == 5
    with pytest.raises(ValueError, match="not found"):
        cache.incr("nope")
    cache.set_many({"m1": 1, "m2": "two"})
    assert cache.get_many(["m1", "m2", "m3"]) == {"m1": 1, "m2": "two"}
    cache.delete_many(["m1", "m2"])
    assert cache.get_many(["m1", "m2"]) == {}
    assert cache.has_key("a") and cache.delete("a") and not cache.has_key("a")
    cache.set("v", "one", version=1)
    cache.set("v", "two", version=2)
    assert cache.get("v", version=1) == "one" and cache.get("v", version=2) == "two"
    assert cache.incr_version("v", version=2) == 3 and cache.get("v", version=3) == "two"


def test_timeouts(cache: SolidCache) -> None:
    cache.set("zero", 1, 0)
    assert cache.get("zero") is None
    cache.set("old", 1)
    cache.set("old", 2, 0)  # a timeout of 0 removes what was there
    assert cache.get("old") is None
    cache.set("short", 1, 0.3)
    cache.set("forever", 1, None)
    assert cache.touch("short", None) is True
    time.sleep(0.4)
    assert cache.get("short") == 1 and cache.get("forever") == 1
    cache.set("gone", 1, 0.2)
    time.sleep(0.3)
    assert cache.get("gone") is None and cache.touch("gone") is False


def test_prefix_and_version_from_settings(cache: SolidCache) -> None:
    prefixed = caches["prefixed"]
    prefixed.set("k", "p")
    cache.set("k", "plain")
    assert prefixed.get("k") == "p" and cache.get("k") == "plain"
    assert current_store().read("p:2:k") is not None  # Django's make_key: prefix:version:key


def test_async_methods(cache: SolidCache) -> None:
    async def go() -> tuple[object, ...]:
        await cache.aset("a", 1)
        await cache.aset_many({"b": 2})
        got = await cache.aget("a"), await cache.aget_many(["a", "b"])
        return (*got, await cache.aincr("a"), await cache.ahas_key("b"))

    assert asyncio.run(go()) == (1, {"a": 1, "b": 2}, 2, True)


def test_a_forged_entry_is_a_miss_not_unpickled(cache: SolidCache) -> None:
    import pickle

    key = cache.make_key("evil")
    current_store().write(key, b"ssdj1" + b"\0" * 32 + pickle.dumps(["unsigned"]))
    assert cache.get("evil") is None


def test_increments_are_exact_across_processes(cache: SolidCache, project: Path) -> None:
    cache.set("hits", 0)
    code = (f"import os, sys, django; sys.path.insert(0, {str(HERE)!r}); "
            "os.environ['DJANGO_SETTINGS_MODULE'] = 'djproject.settings'; django.setup()\n"
            "from django.core.cache import cache\n"
            "for _ in range(200): cache.incr('hits')\n")
    env = {**os.environ, "SOLIDSTACK_TEST_ROOT": str(project)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert cache.get("hits") == 600


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown OPTIONS SPEED"):
        SolidCache("", {"OPTIONS": {"SPEED": 1}})
