-- Shared by the wrk scripts here: numbers wrk's threads 0, 1, 2, … so that each request body
-- can be unique over all of them. Each thread's number is the global `thread_id` of its own
-- Lua state, set by setup() (which runs in the main state): a `local thread_id` in a script
-- would shadow it, and every thread would count from 0.
-- A script loads it with:
--   package.path = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "?.lua;" .. package.path
--   require("threads")
local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end
