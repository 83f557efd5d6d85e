-- Saves a claimed task's progress and extends its lease, if the claim still holds.
-- KEYS[1]: the lane; KEYS[2]: the task fields.
-- ARGV[1]: task id; ARGV[2]: epoch; ARGV[3]: worker; ARGV[4]: progress; ARGV[5]: lease ms.
-- Returns 1, or 0 when the lease was lost.
local id = ARGV[1]
if redis.call('HGET', KEYS[2], id .. ':epoch') ~= ARGV[2]
   or redis.call('HGET', KEYS[2], id .. ':owner') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], id .. ':progress', ARGV[4])
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[5]), id)
return 1
