-- Takes tokens from a shared bucket (after lua/now.lua: `now` is the server's clock, one for
-- every instance). The sums are those of src/policy/bucket.rs, in thousandths of a token.
-- KEYS[1]: the bucket (hash: `tokens`, `at`).
-- ARGV[1]: the rate (a minute); ARGV[2]: tokens wanted; ARGV[3]: the bucket's size, in
-- thousandths (bucket::capacity).
-- Returns {granted, retry after ms}.
local per_minute = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if not tokens or not at then
  tokens = capacity
  at = now
elseif now > at then
  tokens = math.min(capacity, tokens + math.floor((now - at) * per_minute / 60))
  at = now
end
-- Granted once the bucket holds what was asked (or all it can hold), as bucket::take.
local need = math.min(wanted * 1000, math.floor(capacity / 1000) * 1000)
local granted = 0
local retry = 0
if tokens >= need then
  granted = math.min(math.floor(tokens / 1000), wanted)
  tokens = tokens - granted * 1000
else
  retry = math.ceil((need - tokens) * 60 / math.max(per_minute, 1))
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', at)
redis.call('PEXPIRE', KEYS[1], 120000)
return {granted, retry}
