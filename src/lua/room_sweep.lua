-- A dead worker's connections leave one room: every user it held there
-- loses those connections, and a user left with none is announced as
-- room_leave.lua would.
--
-- KEYS[1]  the room's users          {R}:presence
-- KEYS[2]  the same per worker       {R}:presence:w
-- ARGV[1]  "W\n", W the dead worker
-- ARGV[2]  the room's channel
-- ARGV[3]  the room
-- ARGV[4]  chat_presence_events_max, "0": no limit

local all = redis.call('HGETALL', KEYS[2])
local p = ARGV[1]
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, #p) == p then
    local user = string.sub(f, #p + 1)
    local c = tonumber(all[i + 1])
    redis.call('HDEL', KEYS[2], f)
    if c > 0 and redis.call('HINCRBY', KEYS[1], user, -c) <= 0 then
      redis.call('HDEL', KEYS[1], user)
      if ARGV[4] == '0'
         or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[4]) then
        redis.call('PUBLISH', ARGV[2],
          cjson.encode({type = 'presence', room = ARGV[3],
                        user = user, event = 'leave'}))
      end
    end
  end
end
