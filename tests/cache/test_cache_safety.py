"""Safety: pickle only when chosen and always signed, encryption, corrupt rows read as misses."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from solidstack.cache import Codec, DatabaseStore, MemoryStore
from solidstack.cache.codec import PICKLE


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


class Exploit:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_pickle_round_trips_objects(make_sqlite_store) -> None:  # type: ignore[no-untyped-def]
    store = make_sqlite_store(serializer="pickle", secret="s3cret")
    store.write("p", Point(1, 2))
    store.write("t", (1, 2))
    assert store.read("p") == Point(1, 2)
    assert store.read("t") == (1, 2)


def test_pickle_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secret"):
        MemoryStore(serializer="pickle")


def test_tampered_pickle_entry_is_a_miss_never_unpickled(make_sqlite_store, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         caplog: pytest.LogCaptureFixture) -> None:
    store = make_sqlite_store(serializer="pickle", secret="s3cret")
    store.write("p", Point(1, 2))
    marker = tmp_path / "pwned"
    evil = pickle.dumps(Exploit(marker))
    # An attacker who can write the file replaces the payload, keeping the type byte and a made-up MAC.
    forged = bytes((PICKLE,)) + b"\0" * 32 + evil
    store.db.execute("UPDATE solidstack_cache_entries SET value = ?", (forged,))
    with caplog.at_level(logging.WARNING, logger="solidstack.cache"):
        assert store.read("p") is None
    assert not marker.exists()
    assert "signature" in caplog.text
    # Signed with another secret: the same.
    other = Codec(serializer="pickle", secret="other secret")
    store.db.execute("UPDATE solidstack_cache_entries SET value = ?", (other.dump(Exploit(marker), b"p"),))
    assert store.read("p") is None
    assert not marker.exists()


def test_a_safe_store_never_unpickles(make_sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    writer = make_sqlite_store("c.sqlite3", serializer="pickle", secret="s3cret")
    marker = tmp_path / "pwned"
    writer.write("p", Exploit(marker))
    reader = make_sqlite_store("c.sqlite3")
    assert reader.read("p") is None
    assert not marker.exists()


def test_signature_binds_the_key(make_sqlite_store) -> None:  # type: ignore[no-untyped-def]
    store = make_sqlite_store(serializer="pickle", secret="s3cret")
    store.write("a", Point(1, 1))
    store.write("b", Point(2, 2))
    value_a = store.db.query_one("SELECT value FROM solidstack_cache_entries WHERE key = ?", (b"a",))[0]  # type: ignore[index]
    store.db.execute("UPDATE solidstack_cache_entries SET value = ? WHERE key = ?", (value_a, b"b"))
    assert store.read("b") is None


def test_encryption_round_trips_and_hides_values(make_sqlite_store) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("cryptography")
    store = make_sqlite_store(encryption_key="k" * 32)
    store.write("secret", "plain text value " * 3)
    store.write("n", 1)
    assert store.read("secret") == "plain text value " * 3
    assert store.increment("n") == 2
    raw = store.db.path.read_bytes() + Path(str(store.db.path) + "-wal").read_bytes()
    assert b"plain text value" not in raw
    wrong = make_sqlite_store(encryption_key="another key")
    assert wrong.read("secret") is None
    unkeyed = make_sqlite_store()
    assert unkeyed.read("secret") is None


def test_encrypted_entry_moved_to_another_key_is_a_miss(make_sqlite_store) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("cryptography")
    store = make_sqlite_store(encryption_key="k" * 32)
    store.write("a", "A")
    store.write("b", "B")
    value_a = store.db.query_one("SELECT value FROM solidstack_cache_entries WHERE key = ?", (b"a",))[0]  # type: ignore[index]
    store.db.execute("UPDATE solidstack_cache_entries SET value = ? WHERE key = ?", (value_a, b"b"))
    assert store.read("b") is None


@pytest.mark.parametrize("value", [b"", b"\x7f", b"\x01\xff\xfe", b"\x12not zlib", b"\x07{not json", b"\x80short"])
def test_corrupt_rows_are_misses(sqlite_store: DatabaseStore, value: bytes) -> None:
    store = sqlite_store
    store.write("k", "v")
    store.db.execute("UPDATE solidstack_cache_entries SET value = ?", (value,))
    assert store.read("k") is None
    assert store.fetch("k", lambda: "recomputed") == "recomputed"
    assert store.read("k") == "recomputed"


def test_hash_collision_reads_as_a_miss(sqlite_store: DatabaseStore) -> None:
    store = sqlite_store
    store.write("k", "v")
    store.db.execute("UPDATE solidstack_cache_entries SET key = ?", (b"another key with the same hash",))
    assert store.read("k") is None and "k" not in store


def test_a_store_reads_on_after_another_store_of_the_same_file_closes(tmp_path: Path) -> None:
    # Stores of one file share its database object; the read path keeps this thread's cursor between reads and
    # must take the connection again when another store closed it.
    first = DatabaseStore(tmp_path / "shared.sqlite3")
    first.migrate()
    second = DatabaseStore(tmp_path / "shared.sqlite3")
    first.write("k", "v")
    assert second.read("k") == "v"
    first.close()
    assert second.read("k") == "v"
    assert second.stats().misses == 0
    second.close()


def test_invalid_text_in_a_text_entry_is_a_logged_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = DatabaseStore(tmp_path / "c.sqlite3")
    store.migrate()
    store.write("k", "v")
    store.db.execute("UPDATE solidstack_cache_entries SET value = ?", (bytes((1,)) + b"\xff\xfe",))
    with caplog.at_level(logging.WARNING, logger="solidstack.cache"):
        assert store.read("k") is None
    assert "invalid text" in caplog.text and "b'k'" in caplog.text
    store.close()


def test_the_key_hash_is_solid_caches(tmp_path: Path) -> None:
    # The stored key_hash is SHA-256's first 8 bytes as a signed big-endian integer (Solid Cache's layout): a
    # faster way of computing it must give the same values, or every existing entry becomes a miss.
    import hashlib

    from solidstack.cache.database import key_hash

    for key in (b"", b"k", b"users/1/profile", "clé".encode(), bytes(range(256)) * 4):
        assert key_hash(key) == int.from_bytes(hashlib.sha256(key).digest()[:8], "big", signed=True)
    store = DatabaseStore(tmp_path / "c.sqlite3")
    store.migrate()
    store.write("users/1/profile", "v")
    [stored] = store.db.query("SELECT key_hash FROM solidstack_cache_entries")
    assert stored["key_hash"] == int.from_bytes(hashlib.sha256(b"users/1/profile").digest()[:8], "big", signed=True)
    store.close()


@pytest.mark.parametrize("kind", ["hit", "stored None", "collision", "expired", "other version", "corrupt",
                                  "invalid text", "absent"])
def test_read_exist_and_fetch_agree_on_every_kind_of_row(sqlite_store: DatabaseStore, kind: str) -> None:
    # read() carries its own copy of _read's checks (one frame less on the hottest call, decision 0121): both
    # must give the same answer for every kind of row, with and without a version.
    store = sqlite_store
    store.write("k", None if kind == "stored None" else "v", version="1")
    change = {
        "collision": ("key = ?", b"another key with the same hash"),
        "expired": ("expires_at = ?", 1.0),
        "other version": ("version = ?", "2"),
        "corrupt": ("value = ?", b"\x7f"),
        "invalid text": ("value = ?", bytes((1,)) + b"\xff\xfe"),
    }.get(kind)
    if change is not None:
        store.db.execute(f"UPDATE solidstack_cache_entries SET {change[0]}", (change[1],))
    if kind == "absent":
        store.delete("k")
    hit = kind in ("hit", "stored None")
    expected = {"hit": "v", "stored None": None}.get(kind)
    for version in ("1", None):
        if kind == "other version" and version is None:
            continue  # a read without a version takes any version's entry
        assert store.read("k", version=version) == expected
        assert store.exist("k", version=version) is hit
        assert store.fetch("k", lambda: "computed", version=version) == (expected if hit else "computed")
        store.write("k", None if kind == "stored None" else "v", version="1")
        if change is not None:
            store.db.execute(f"UPDATE solidstack_cache_entries SET {change[0]}", (change[1],))
        if kind == "absent":
            store.delete("k")


def test_a_read_leaves_no_read_snapshot_open(sqlite_store: DatabaseStore) -> None:
    # The read fetches its one row with fetchone(): the driver steps past the row as it returns it, so the
    # statement is done and no read snapshot stays open on the connection (a half-read statement would hold
    # one, and no checkpoint could finish until the thread read again). Decision 0121.
    import sqlite3

    store = sqlite_store
    store.write("k", "v")
    store.write("k2", "v2", version="1")
    assert store.read("k") == "v" and store.read("k2", version="1") == "v2"
    other = sqlite3.connect(str(store.db.path), isolation_level=None)
    try:
        other.execute("INSERT INTO solidstack_cache_entries (key, value, key_hash, byte_size, created_at) "
                      "VALUES (x'00', x'00', 0, 1, 0)")
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        other.close()
