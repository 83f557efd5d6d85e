-- Deletes stale subscriptions of one shard, each only if its activity is still what the caller
-- read when it judged it stale (a receipt since then keeps it).
-- KEYS[1]: the shard's hash.
-- ARGV: pairs (id, activity read), the activity as its 12 record bytes.
-- Returns the ids deleted.
local deleted = {}
for i = 1, #ARGV, 2 do
  local record = redis.call('HGET', KEYS[1], ARGV[i])
  if record then
    local activity = split_activity(record)
    if activity == ARGV[i + 1] then
      redis.call('HDEL', KEYS[1], ARGV[i])
      deleted[#deleted + 1] = ARGV[i]
    end
  end
end
return deleted
