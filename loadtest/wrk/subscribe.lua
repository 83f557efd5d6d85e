-- wrk script: POST a new subscription per request (unique endpoint, real P-256 key).
-- Usage: wrk -t2 -c64 -d10s -s loadtest/wrk/subscribe.lua http://127.0.0.1:8080/v1/apps/APP_ID/subscriptions
local counter = 0
-- Each thread's number is a global of its own Lua state, set by setup() (which runs in the
-- main state): a `local thread_id` here would shadow it, and every thread would count from 0.
local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"subscription":{"endpoint":"https://fcm.googleapis.com/fcm/send/wrk%d-%d:APA91bHfTestTokenForLoadTesting","keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}},"locale":"en-US","timezone":"America/New_York"}',
    thread_id, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
