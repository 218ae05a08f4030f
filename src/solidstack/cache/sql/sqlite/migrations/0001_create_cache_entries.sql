-- The Solid Cache model: one row per entry, found by a 64-bit hash of the key; the key itself is stored so a
-- hash collision reads as a miss, never as another key's value. `id` orders rows by first write, which is the
-- FIFO order eviction follows. Times are Unix seconds (REAL, UTC).
--   value       the encoded entry (codec.py: a type byte, then the payload; compressed, signed or encrypted)
--   byte_size   an estimate of the row's size (key + value + overhead), summed by the size estimate
--   expires_at  NULL for an entry written without expires_in; checked on every read
--   version     the entry's version (Rails' `version:`); NULL when written without one

CREATE TABLE solidstack_cache_entries (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    key_hash INTEGER NOT NULL,
    byte_size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    version TEXT
);
CREATE UNIQUE INDEX index_solidstack_cache_entries_on_key_hash ON solidstack_cache_entries (key_hash);
