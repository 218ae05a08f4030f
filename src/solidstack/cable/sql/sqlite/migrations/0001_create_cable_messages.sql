-- The Solid Cable model: one row per broadcast, read by every listener subscribed to its channel.
-- Times are Unix seconds (REAL, UTC). channel_hash is a signed 64-bit hash of channel, indexed so that a
-- listener's poll reads only its channels; channel is kept to rule out a hash collision.
-- id is the order of delivery: SQLite has one writer at a time, so ids are assigned in commit order and a
-- reader that has seen id N will never later see a smaller one commit.

CREATE TABLE solidstack_cable_messages (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    channel_hash INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX index_solidstack_cable_messages_on_channel_hash ON solidstack_cable_messages (channel_hash, id);
CREATE INDEX index_solidstack_cable_messages_on_created_at ON solidstack_cable_messages (created_at);
