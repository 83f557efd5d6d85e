-- Takes or renews the lease on a webhook's delivery. Each state is `LEASE_UNTIL|OWNER|JSON`.
-- KEYS[1]: webhooks; KEYS[2]: states. ARGV[1]: webhook id; ARGV[2]: worker; ARGV[3]: lease ms.
-- Returns the state JSON, or false when the webhook is gone or another worker holds it.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return false
end
local record = redis.call('HGET', KEYS[2], ARGV[1])
if not record then
  return false
end
local until_ms, owner, state = string.match(record, '^(%d*)|([^|]*)|(.*)$')
if tonumber(until_ms) > now and owner ~= ARGV[2] then
  return false
end
redis.call('HSET', KEYS[2], ARGV[1], (now + tonumber(ARGV[3])) .. '|' .. ARGV[2] .. '|' .. state)
return state
