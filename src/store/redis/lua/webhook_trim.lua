-- Prefixed to the webhook scripts that move or remove cursors: drops the outbox entries that
-- every webhook of the app has passed. Entries are numbered without holes, so the passed ones
-- are those from the last trim's end to the lowest cursor.
local function trim(cursors, outbox, trimmed, seq)
  local values = redis.call('HVALS', cursors)
  local lowest
  if #values == 0 then
    lowest = tonumber(redis.call('GET', seq) or '0')
  else
    lowest = math.huge
    for _, c in ipairs(values) do
      lowest = math.min(lowest, tonumber(c))
    end
  end
  local from = tonumber(redis.call('GET', trimmed) or '0')
  if lowest <= from then
    return
  end
  local batch = {}
  for n = from + 1, lowest do
    table.insert(batch, n)
    if #batch == 1000 then
      redis.call('HDEL', outbox, unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then
    redis.call('HDEL', outbox, unpack(batch))
  end
  redis.call('SET', trimmed, lowest)
end
