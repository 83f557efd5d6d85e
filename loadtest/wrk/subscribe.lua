-- wrk script: POST a new subscription per request (unique endpoint, real P-256 key).
-- Usage: wrk -t2 -c64 -d10s -s loadtest/wrk/subscribe.lua http://127.0.0.1:8080/v1/apps/APP_ID/subscriptions
-- `thread_id`, this thread's number (threads.lua, found beside this script).
package.path = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "?.lua;" .. package.path
require("threads")
local counter = 0

function request()
  counter = counter + 1
  local body = string.format(
    '{"subscription":{"endpoint":"https://fcm.googleapis.com/fcm/send/wrk%d-%d:APA91bHfTestTokenForLoadTesting","keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}},"locale":"en-US","timezone":"America/New_York"}',
    thread_id, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
