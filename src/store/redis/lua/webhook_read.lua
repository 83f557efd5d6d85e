-- Reads outbox entries numbered above ARGV[1], at most ARGV[2] of them, in order.
-- KEYS[1]: sequence; KEYS[2]: outbox. Returns {seq, entry JSON, seq, entry JSON, ...}.
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local from = tonumber(ARGV[1]) + 1
local to = math.min(last, tonumber(ARGV[1]) + tonumber(ARGV[2]))
local out = {}
for n = from, to do
  local entry = redis.call('HGET', KEYS[2], n)
  if entry then
    table.insert(out, n)
    table.insert(out, entry)
  end
end
return out
