-- A profile lists a linked subscription, once, in link order; linking creates the profile.
-- KEYS[1]: the profile's hash (`doc`, `seq`); KEYS[2]: its sorted set of subscription ids.
-- ARGV[1]: the subscription id (8 bytes); ARGV[2]: the document of a new profile.
-- Returns 1 when newly listed, 0 when it was listed already.
redis.call('HSETNX', KEYS[1], 'doc', ARGV[2])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], seq, ARGV[1])
return 1
