-- Whether a hash field still holds what the caller read (prefixed to the compare-and-set
-- scripts): `present` is '1' if it was read present, '0' if absent; `read` is the value read.
local function unchanged(hash, field, present, read)
  local current = redis.call('HGET', hash, field)
  if present == '1' then return current == read end
  return not current
end
