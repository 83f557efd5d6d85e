-- Registers a notification's new tasks as open in its life, once per task id: a task not yet
-- in the notification's set of tasks joins it and adds 1 to the life's `open`. Called before
-- the tasks enter the ledger, so the notification never completes before them.
-- KEYS[1]: the notification's life; KEYS[2]: its tasks (every one registered, done or not).
-- ARGV[1]: now (ms); ARGV[2..]: task ids. With none, the notification was created without
-- tasks: it completes at once (unless its life had begun).
-- Returns how many tasks were registered.
if #ARGV == 1 then
  if redis.call('HSETNX', KEYS[1], 'open', 0) == 1 then
    redis.call('HSET', KEYS[1], 'completed_at', ARGV[1])
  end
  return 0
end
local added = 0
for i = 2, #ARGV do
  added = added + redis.call('SADD', KEYS[2], ARGV[i])
end
redis.call('HINCRBY', KEYS[1], 'open', added)
return added
