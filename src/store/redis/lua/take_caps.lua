-- Checks and counts a frequency cap for each holder of a batch (all keys of one Redis, or of
-- one hash-tag unit on a Cluster), each holder atomically.
-- KEYS[i]: a holder's counted notifications (sorted set of `CATEGORY:NOTIFICATION` scored by
-- when it was counted, ms).
-- ARGV[1]: now (ms); ARGV[2]: category; ARGV[3]: notification id; ARGV[4]: the longest
-- window (ms); then a (window ms, max) pair per cap window.
-- Returns one 1 (allowed, counted) or 0 (capped) per key. A holder already counted for this
-- notification is allowed and not counted again.
local now = tonumber(ARGV[1])
local prefix = ARGV[2] .. ':'
local member = prefix .. ARGV[3]
local longest = tonumber(ARGV[4])
local answers = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - longest)
  local allowed = 1
  if not redis.call('ZSCORE', key, member) then
    local w = 5
    while ARGV[w] do
      local from = now - tonumber(ARGV[w])
      local max = tonumber(ARGV[w + 1])
      local count = 0
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, '(' .. from, '+inf')) do
        if string.sub(m, 1, #prefix) == prefix then
          count = count + 1
        end
      end
      if count >= max then
        allowed = 0
        break
      end
      w = w + 2
    end
    if allowed == 1 then
      redis.call('ZADD', key, now, member)
      redis.call('PEXPIRE', key, longest)
    end
  end
  answers[i] = allowed
end
return answers
