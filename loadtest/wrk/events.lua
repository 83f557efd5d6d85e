-- wrk script: POST one CRM event per request to /v1/events, each for a new person and cart
-- (so that each schedules a pending send of a trigger on `cart_abandoned`).
-- Usage: AVISO_API_KEY=... wrk -t2 -c32 -d15s -s loadtest/wrk/events.lua http://127.0.0.1:8080/v1/events
local counter = 0
-- Each thread's number is a global of its own Lua state, set by setup() (which runs in the
-- main state): a `local thread_id` here would shadow it, and every thread would count from 0.
local next_thread = 0
local key = os.getenv("AVISO_API_KEY") or ""

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

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
