-- Saves a webhook's state (fenced by its lease's owner) and its new dead letters, then trims
-- the outbox. KEYS[1]: states; KEYS[2]: cursors; KEYS[3]: the webhook's dead letters (list);
-- KEYS[4]: outbox; KEYS[5]: trimmed-to; KEYS[6]: sequence. ARGV[1]: webhook id; ARGV[2]:
-- worker; ARGV[3]: cursor; ARGV[4]: state JSON; ARGV[5]: dead letters kept at most;
-- ARGV[6..]: dead letter JSONs. Returns 1, or 0 when the worker does not hold the lease.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then
  return 0
end
local until_ms, owner = string.match(record, '^(%d*)|([^|]*)|')
if owner ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], until_ms .. '|' .. owner .. '|' .. ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if #ARGV >= 6 then
  for i = 6, #ARGV do
    redis.call('RPUSH', KEYS[3], ARGV[i])
  end
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
end
trim(KEYS[2], KEYS[4], KEYS[5], KEYS[6])
return 1
