-- A connection of a user left a room: room_join.lua undone.  The user's
-- last connection is announced, unless the room had more than
-- chat_presence_events_max users with the user in it.
--
-- KEYS[1]  the room's users          {R}:presence
-- KEYS[2]  the same per worker       {R}:presence:w
-- ARGV[1]  the user
-- ARGV[2]  "W\nuser", W the worker
-- ARGV[3]  the room's channel
-- ARGV[4]  the room
-- ARGV[5]  chat_presence_events_max, "0": no limit

local c = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
if c <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
if c < 0 then return end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if ARGV[5] == '0'
     or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[5]) then
    redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'presence',
      room = ARGV[4], user = ARGV[1], event = 'leave'}))
  end
end
