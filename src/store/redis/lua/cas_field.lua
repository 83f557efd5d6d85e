-- Compare-and-set of one hash field: the rule of a change is applied in Rust to what was read,
-- and written only if the field still holds what was read (else the caller reads again).
-- KEYS[1]: the hash.
-- ARGV[1]: the field; ARGV[2]: '1' if it was read present, '0' if absent; ARGV[3]: the value
-- read; ARGV[4]: 'set' or 'del'; ARGV[5]: the new value (for 'set').
-- Returns 1 when written, 0 when the field changed since it was read.
if not unchanged(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
if ARGV[4] == 'del' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
end
return 1
