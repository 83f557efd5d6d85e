-- Removes a claimed pending send, if the claim still holds; or, with ARGV[2] = '' (a cancel),
-- whatever its claim.
-- KEYS[1]: send fields; KEYS[2]: due index; KEYS[3]: the person's pending sends.
-- ARGV[1]: id; ARGV[2]: epoch ('' for any); ARGV[3]: worker.
-- Returns 1, or 0 when there was no such send (or the claim was lost).
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], id .. ':send') == 0 then return 0 end
if ARGV[2] ~= '' and (redis.call('HGET', KEYS[1], id .. ':epoch') ~= ARGV[2]
   or redis.call('HGET', KEYS[1], id .. ':owner') ~= ARGV[3]) then return 0 end
redis.call('HDEL', KEYS[1], id .. ':send', id .. ':epoch', id .. ':owner')
redis.call('ZREM', KEYS[2], id)
redis.call('SREM', KEYS[3], id)
return 1
