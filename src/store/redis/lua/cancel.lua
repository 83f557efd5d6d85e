-- Removes every task of a notification, claimed or not (their workers lose their leases).
-- KEYS[1]: priority lane; KEYS[2]: bulk lane; KEYS[3]: task fields; KEYS[4]: the
-- notification's tasks. Returns how many there were.
local ids = redis.call('SMEMBERS', KEYS[4])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id .. ':spec', id .. ':epoch', id .. ':owner', id .. ':progress', id .. ':claims')
end
redis.call('DEL', KEYS[4])
return #ids
