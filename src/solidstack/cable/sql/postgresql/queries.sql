-- Named queries of the cable part (PostgreSQL): the same names and parameters as sql/sqlite/queries.sql, except
-- that a broadcast is `broadcast` (ordered, inserted and announced in one statement) instead of `insert_message`.

-- name: broadcast
-- Order lock, insert and NOTIFY in one statement: see solidstack_cable_broadcast() in migrations/0001 and
-- decision 0210.
SELECT solidstack_cable_broadcast(:channel, :channel_hash, :payload, :created_at) AS id

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

-- name: trimmable
-- Whether any message is older than the cutoff: one probe of the created_at index, read without the write lock
-- (on most passes nothing is old enough and the trim stops here; decision 0220).
SELECT 1 AS found FROM solidstack_cable_messages WHERE created_at < :cutoff LIMIT 1

-- name: trim_messages
-- The oldest messages by created_at, so that the created_at index is walked from its start and the pass reads
-- only the rows it deletes (ORDER BY id made the planner scan the table in id order, testing every row).
DELETE FROM solidstack_cable_messages WHERE id IN (
    SELECT id FROM solidstack_cable_messages WHERE created_at < :cutoff ORDER BY created_at LIMIT :batch_size
)

-- name: count_messages
SELECT count(*) AS count FROM solidstack_cable_messages

-- name: take_message
-- The oldest message on one channel written at or after :not_before, removed as it is read: a queue's receive
-- (the Django Channels layer). SKIP LOCKED: a concurrent receiver takes the next one instead of waiting.
DELETE FROM solidstack_cable_messages WHERE id = (
    SELECT id FROM solidstack_cable_messages
    WHERE channel_hash = :channel_hash AND channel = :channel AND created_at >= :not_before
    ORDER BY id LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, channel, payload

-- name: count_channel
SELECT count(*) AS count FROM solidstack_cable_messages
WHERE channel_hash = :channel_hash AND channel = :channel AND created_at >= :not_before

-- name: delete_channel_range
-- Messages of the channels whose name starts with :low older than :cutoff (by prefix, not a range of text: the
-- database's collation need not order text by code point). :high is SQLite's range end, unused here.
DELETE FROM solidstack_cable_messages WHERE left(channel, char_length(:low)) = :low AND created_at < :cutoff
