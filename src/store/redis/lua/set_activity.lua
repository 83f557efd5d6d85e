-- Changes the activity of some subscriptions of one shard in place, each only if it still holds
-- what the caller read (the rule is applied in Rust: Activity::delivered); the rest of each
-- record is left as it is, so a concurrent change of tags or keys is neither lost nor conflicts.
-- KEYS[1]: the shard's hash.
-- ARGV: triples (id, activity read, activity to write), each activity its 12 record bytes or ''.
-- Returns how many were written.
local written = 0
for i = 1, #ARGV, 3 do
  local record = redis.call('HGET', KEYS[1], ARGV[i])
  if record then
    local activity, body = split_activity(record)
    if activity == ARGV[i + 1] then
      redis.call('HSET', KEYS[1], ARGV[i], join_activity(ARGV[i + 2], body))
      written = written + 1
    end
  end
end
return written
