-- The server's clock in milliseconds (prefixed to the ledger's scripts), so that instances
-- need not agree on the time. `scripts.rs` adds the application clock's shift after it
-- (`store::clock`: zero but in tests).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
