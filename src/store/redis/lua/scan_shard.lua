-- A page of a shard's subscriptions, from a cursor that only this server process can resume.
-- An HSCAN cursor is a position in the hash table, which a restarted Redis (or a failed-over
-- replica) builds anew with another hash seed: resumed there, it would skip members. So each
-- cursor carries the run id of the server that gave it, and one from another run starts the
-- shard again (some subscribers handed out twice, none missed).
-- KEYS[1]: the shard's hash. ARGV[1]: the cursor's run id ('' for the shard's start);
-- ARGV[2]: its HSCAN position; ARGV[3]: the COUNT hint.
-- Returns {run id, next position ('0': the shard is done), {id, record, id, record, ...}}.
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local position = ARGV[2]
if ARGV[1] ~= run_id then
    position = '0'
end
local page = redis.call('HSCAN', KEYS[1], position, 'COUNT', ARGV[3])
return {run_id, page[1], page[2]}
