-- Deletes a webhook, its state, cursor and dead letters, then trims the outbox.
-- KEYS[1]: webhooks; KEYS[2]: states; KEYS[3]: cursors; KEYS[4]: the webhook's dead letters;
-- KEYS[5]: outbox; KEYS[6]: trimmed-to; KEYS[7]: sequence. ARGV[1]: webhook id.
-- Returns 1 when it existed.
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
trim(KEYS[3], KEYS[5], KEYS[6], KEYS[7])
return existed
