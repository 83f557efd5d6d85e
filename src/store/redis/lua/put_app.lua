-- Writes an app and moves its API-key index with it, if the app is still as it was read.
-- KEYS[1]: apps (id -> JSON); KEYS[2]: API keys (key hash -> app id).
-- ARGV[1]: app id; ARGV[2]: '1' if it was read present; ARGV[3]: the JSON read;
-- ARGV[4]: the new JSON; ARGV[5]: how many old key hashes follow; then the old key hashes,
-- then the new ones.
-- Returns 1 when written, 0 when the app changed since it was read.
if not unchanged(KEYS[1], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local old = tonumber(ARGV[5])
for i = 6, 5 + old do redis.call('HDEL', KEYS[2], ARGV[i]) end
for i = 6 + old, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
return 1
