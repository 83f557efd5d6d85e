-- Appends entries to an app's outbox, unless the app has no webhook.
-- KEYS[1]: webhooks; KEYS[2]: sequence; KEYS[3]: outbox (hash seq → entry JSON).
-- ARGV: entry JSONs. Returns the last sequence number given out (0 when nothing was kept).
if redis.call('HLEN', KEYS[1]) == 0 then
  return 0
end
local seq = 0
for i = 1, #ARGV do
  seq = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[3], seq, ARGV[i])
end
return seq
