-- Claims the first task of a lane scored <= now (new, or its lease ran out) for a lease.
-- KEYS[1]: the lane (sorted set scored by claimable-from ms); KEYS[2]: the task fields.
-- ARGV[1]: lease ms; ARGV[2]: the worker.
-- Returns {id, spec, epoch, previous claims, progress} or false.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #ids == 0 then return false end
local id = ids[1]
local spec = redis.call('HGET', KEYS[2], id .. ':spec')
if not spec then redis.call('ZREM', KEYS[1], id) return false end
local epoch = redis.call('HINCRBY', KEYS[2], id .. ':epoch', 1)
local claims = redis.call('HINCRBY', KEYS[2], id .. ':claims', 1) - 1
redis.call('HSET', KEYS[2], id .. ':owner', ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
local progress = redis.call('HGET', KEYS[2], id .. ':progress') or ''
return {id, spec, epoch, claims, progress}
