-- Removes a claimed task, if the claim still holds.
-- KEYS[1]: the lane; KEYS[2]: the task fields; KEYS[3]: the notification's tasks.
-- ARGV[1]: task id; ARGV[2]: epoch; ARGV[3]: worker. Returns 1, or 0 when the lease was lost.
local id = ARGV[1]
if redis.call('HGET', KEYS[2], id .. ':epoch') ~= ARGV[2]
   or redis.call('HGET', KEYS[2], id .. ':owner') ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[2], id .. ':spec', id .. ':epoch', id .. ':owner', id .. ':progress', id .. ':claims')
redis.call('SREM', KEYS[3], id)
return 1
