-- Claims pending sends due now (or whose claim's lease ran out) for a lease.
-- KEYS[1]: send fields; KEYS[2]: due index. ARGV[1]: lease ms; ARGV[2]: worker; ARGV[3]: limit.
-- Returns {{send JSON, epoch}, ...}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, id in ipairs(ids) do
  local send = redis.call('HGET', KEYS[1], id .. ':send')
  if send then
    local epoch = redis.call('HINCRBY', KEYS[1], id .. ':epoch', 1)
    redis.call('HSET', KEYS[1], id .. ':owner', ARGV[2])
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), id)
    table.insert(claimed, {send, epoch})
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return claimed
