-- Creates or replaces a webhook; a new one's cursor starts at the outbox's end.
-- KEYS[1]: webhooks; KEYS[2]: sequence; KEYS[3]: states (id → `LEASE_UNTIL|OWNER|JSON`);
-- KEYS[4]: cursors (id → cursor). ARGV[1]: webhook id; ARGV[2]: webhook JSON; ARGV[3]: a new
-- webhook's state JSON, whose placeholder `"cursor":0` becomes the outbox's end.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  local finish = tonumber(redis.call('GET', KEYS[2]) or '0')
  local state = string.gsub(ARGV[3], '"cursor":0', '"cursor":' .. finish, 1)
  redis.call('HSET', KEYS[3], ARGV[1], '0||' .. state)
  redis.call('HSET', KEYS[4], ARGV[1], finish)
end
return 1
