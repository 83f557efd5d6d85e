-- A subscription record's activity (model/record.rs): a record of version 1 keeps none, one of
-- version 2 keeps it in the 12 bytes after the version byte. Mirrors those two versions.
local function split_activity(record)
  if string.byte(record, 1) == 2 then
    return string.sub(record, 2, 13), string.sub(record, 14)
  end
  return '', string.sub(record, 2)
end

local function join_activity(activity, body)
  if activity == '' then return '\1' .. body end
  return '\2' .. activity .. body
end
