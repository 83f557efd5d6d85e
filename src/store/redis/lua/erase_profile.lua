-- Takes a profile away whole (document, links, send counts) and answers the subscription ids
-- it listed, which the caller then deletes. A link that lands after this recreates the
-- profile with that one subscription: as if it had come after the erasure.
-- KEYS[1]: the profile's hash; KEYS[2]: its links; KEYS[3]: its send counts; KEYS[4]: its
-- frequency-cap counts.
-- Returns {existed (0/1), {ids}}.
local existed = redis.call('EXISTS', KEYS[1], KEYS[2])
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if existed > 0 then existed = 1 end
return {existed, ids}
