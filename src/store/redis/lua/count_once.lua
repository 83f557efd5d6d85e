-- Counts a member once: adds it to the set and, when it is new, 1 to each counter field.
-- KEYS[1]: the set; KEYS[2]: the counters hash. ARGV[1]: the member; ARGV[2]: when the set
-- expires (Unix ms); ARGV[3..]: the counter fields. Answers 1 when counted, 0 when seen before.
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
for i = 3, #ARGV do
  redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
end
return 1
