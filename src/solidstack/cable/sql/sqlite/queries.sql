-- Named queries of the cable part (SQLite). See solidstack/db/queries.py for the format.

-- name: insert_message
INSERT INTO solidstack_cable_messages (channel, channel_hash, payload, created_at)
VALUES (:channel, :channel_hash, :payload, :created_at)

-- name: last_id
SELECT coalesce(max(id), 0) AS last_id FROM solidstack_cable_messages

-- name: poll_messages
-- Messages after the cursor for the channels in the JSON array of hashes, in publish order, and (kind 0) the
-- newest id of the table, in one statement so that both come from one snapshot.
SELECT 0 AS kind, (SELECT coalesce(max(id), 0) FROM solidstack_cable_messages) AS id, NULL AS channel,
       NULL AS payload
UNION ALL
SELECT 1 AS kind, id, channel, payload FROM (
    SELECT id, channel, payload FROM solidstack_cable_messages
    WHERE id > :since AND channel_hash IN (SELECT value FROM json_each(:hashes))
    ORDER BY id
    LIMIT :limit
)

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
-- (the Django Channels layer), so that each message goes to one receiver across processes.
DELETE FROM solidstack_cable_messages WHERE id = (
    SELECT id FROM solidstack_cable_messages
    WHERE channel_hash = :channel_hash AND channel = :channel AND created_at >= :not_before
    ORDER BY id LIMIT 1
)
RETURNING id, channel, payload

-- name: count_channel
SELECT count(*) AS count FROM solidstack_cable_messages
WHERE channel_hash = :channel_hash AND channel = :channel AND created_at >= :not_before

-- name: delete_channel_range
-- Messages of the channels named from :low (included) to :high (excluded) older than :cutoff.
DELETE FROM solidstack_cable_messages WHERE channel >= :low AND channel < :high AND created_at < :cutoff
