-- Schedules a pending send unless one with the same id is pending ('ignore'), or replaces it
-- and fences its claim ('rearm').
-- KEYS[1]: send fields (`ID:send`, `ID:epoch`, `ID:owner`); KEYS[2]: due index (zset);
-- KEYS[3]: the person's pending sends (set).
-- ARGV[1]: id; ARGV[2]: the send (JSON); ARGV[3]: due ms; ARGV[4]: 'ignore' or 'rearm'.
-- Returns 1 new, 2 re-armed, 0 already pending.
local pending = redis.call('HEXISTS', KEYS[1], ARGV[1] .. ':send') == 1
if pending and ARGV[4] == 'ignore' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1] .. ':send', ARGV[2])
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':epoch', 1)
redis.call('HDEL', KEYS[1], ARGV[1] .. ':owner')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
if pending then return 2 end
return 1
