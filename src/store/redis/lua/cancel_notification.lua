-- Cancels a notification's life unless it completed (`NotificationStore::cancel_notification`):
-- atomic with the completion in `count_batch.lua`, under the same hash tag.
-- KEYS[1]: the notification's life. ARGV[1]: now (ms).
-- Returns {outcome, at}: 'cancelled' now, 'already' (cancelled before), or 'completed'.
local completed = redis.call('HGET', KEYS[1], 'completed_at')
if completed then return {'completed', completed} end
local cancelled = redis.call('HGET', KEYS[1], 'cancelled_at')
if cancelled then return {'already', cancelled} end
redis.call('HSET', KEYS[1], 'cancelled_at', ARGV[1])
return {'cancelled', ARGV[1]}
