-- The run id of the server that holds KEYS[1] (a Cluster routes the script by its key), which
-- changes when Redis restarts or a replica takes over. A shard scan's cursor carries it: an
-- HSCAN cursor is a position in the hash table, which a restarted Redis builds anew with another
-- hash seed, so a cursor of another run would skip members (`subscriptions.rs`, `scan_shard`).
-- Sent as EVAL in the scan's pipeline, before the HSCAN, so that a restart in between makes
-- the label stale (and the next page starts the shard again), never wrong.
return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
