-- Keeps (for ARGV[3] ms) or releases an idempotency key, if the given notification holds it.
-- KEYS[1]: the key. ARGV[1]: the notification id; ARGV[2]: 'keep' or 'release'; ARGV[3]: ms.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'keep' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
