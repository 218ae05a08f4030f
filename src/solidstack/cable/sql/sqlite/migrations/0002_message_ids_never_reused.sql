-- Message ids are never handed out twice (decision 0223). An INTEGER PRIMARY KEY without AUTOINCREMENT takes
-- max(id) + 1, so deleting the newest row (a trim that empties the table, the Django layer's take_message of the
-- last message) let the next broadcast reuse its id; a listener whose cursor had passed that id skipped the new
-- message. AUTOINCREMENT keeps the largest id ever used in sqlite_sequence. SQLite cannot add it in place: the
-- table is rebuilt, rows and ids kept (copying them sets sqlite_sequence to the largest).

CREATE TABLE solidstack_cable_messages_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    channel_hash INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
INSERT INTO solidstack_cable_messages_new (id, channel, channel_hash, payload, created_at)
    SELECT id, channel, channel_hash, payload, created_at FROM solidstack_cable_messages;
DROP TABLE solidstack_cable_messages;
ALTER TABLE solidstack_cable_messages_new RENAME TO solidstack_cable_messages;
CREATE INDEX index_solidstack_cable_messages_on_channel_hash ON solidstack_cable_messages (channel_hash, id);
CREATE INDEX index_solidstack_cable_messages_on_created_at ON solidstack_cable_messages (created_at);
