-- wrk script: POST one CRM event per request to /v1/events, each for a new person and cart
-- (so that each schedules a pending send of a trigger on `cart_abandoned`).
-- Usage: AVISO_API_KEY=... wrk -t2 -c32 -d15s -s loadtest/wrk/events.lua http://127.0.0.1:8080/v1/events
-- `thread_id`, this thread's number (threads.lua, found beside this script).
package.path = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "?.lua;" .. package.path
require("threads")
local counter = 0
local key = os.getenv("AVISO_API_KEY") or ""

function request()
  counter = counter + 1
  local body = string.format(
    '{"external_id":"wrk%d-%d","name":"cart_abandoned","key":"cart-%d","properties":{"items":2,"total":59.9}}',
    thread_id, counter, counter)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end
