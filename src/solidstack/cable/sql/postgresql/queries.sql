-- Named queries of the cable part (PostgreSQL): the same names and parameters as sql/sqlite/queries.sql, plus
-- the statements a broadcast runs around its insert here (`order_broadcasts`, `announce_message`).

-- name: order_broadcasts
-- Broadcasts insert one at a time, each holding this lock from before its id is drawn until its commit (the
-- lock is released after the commit is visible): ids become visible in id order, so a listener that has read
-- up to id N never later sees a smaller id commit, and `id > cursor` skips nothing (decision 0210).
-- The key is a constant of this table: 0x536f6c6964436162 ("SolidCab").
SELECT pg_advisory_xact_lock(6012143227472404834)

-- name: insert_message
INSERT INTO solidstack_cable_messages (channel, channel_hash, payload, created_at)
VALUES (:channel, :channel_hash, :payload, :created_at)
RETURNING id

-- name: announce_message
-- Wakes the listeners of every process on every machine at the commit (never on a rollback). The payload is
-- the channel's hash, so a process that does not listen to that channel does not poll.
SELECT pg_notify('solidstack_cable', CAST(:channel_hash AS text))

-- name: last_id
SELECT coalesce(max(id), 0) AS last_id FROM solidstack_cable_messages

-- name: poll_messages
-- Messages after the cursor for the channels in the array of hashes, in publish order, and (kind 0) the newest
-- id of the table, in one statement so that both come from one snapshot.
SELECT 0 AS kind, (SELECT coalesce(max(id), 0) FROM solidstack_cable_messages) AS id, NULL AS channel,
       NULL AS payload
UNION ALL
(SELECT 1 AS kind, id, channel, payload FROM solidstack_cable_messages
 WHERE id > :since AND channel_hash = ANY(:hashes)
 ORDER BY id
 LIMIT :limit)

-- name: trim_messages
DELETE FROM solidstack_cable_messages WHERE id IN (
    SELECT id FROM solidstack_cable_messages WHERE created_at < :cutoff ORDER BY id LIMIT :batch_size
)

-- name: count_messages
SELECT count(*) AS count FROM solidstack_cable_messages
