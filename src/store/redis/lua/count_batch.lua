-- Adds a batch's counters to its notification's, and to its series, once per task and
-- position: only when the batch reaches further into its task than every batch of the task
-- counted before (`TaskStep::reaches`, which the store's ledger trait documents). A task
-- counted through its end is no longer open in the notification's life; the last one to close
-- completes the notification unless it was cancelled (`LedgerStore::record_batch`).
-- KEYS[1]: the notification's counters; KEYS[2]: how far each of its tasks was counted;
-- KEYS[3]: its life; KEYS[4]: its series; KEYS[5]: its registered tasks (`register_tasks.lua`).
-- ARGV[1]: task id; ARGV[2]: how far the batch reaches; ARGV[3]: 1 when the batch completes
-- the task; ARGV[4]: now (ms); ARGV[5]: the series bucket; ARGV[6..]: counter, delta, ….
-- Returns 1 when counted, 0 when the batch was counted before.
local reached = redis.call('HGET', KEYS[2], ARGV[1])
local reaches = tonumber(ARGV[2])
if reached and reaches <= tonumber(reached) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
for i = 6, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[4], ARGV[5] .. ':' .. ARGV[i], ARGV[i + 1])
end
if ARGV[3] == '1' and redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1 then
  local open = redis.call('HINCRBY', KEYS[3], 'open', -1)
  if open <= 0 and redis.call('HEXISTS', KEYS[3], 'cancelled_at') == 0 then
    redis.call('HSETNX', KEYS[3], 'completed_at', ARGV[4])
  end
end
return 1
