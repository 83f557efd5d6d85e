-- Counts one send to a profile in the current window, dropping the window's older slots.
-- KEYS[1]: the profile's send counts (hash of `WINDOW_MS:SLOT` -> count).
-- ARGV[1]: window ms; ARGV[2]: the current slot; ARGV[3]: how long the hash must live (ms).
local field = ARGV[1] .. ':' .. ARGV[2]
local count = redis.call('HINCRBY', KEYS[1], field, 1)
for _, key in ipairs(redis.call('HKEYS', KEYS[1])) do
  local window, slot = string.match(key, '^(%d+):(%d+)$')
  if window == ARGV[1] and tonumber(slot) < tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], key)
  end
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return count
