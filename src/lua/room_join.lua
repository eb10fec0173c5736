-- A connection of a user joined a room: the room's count of the user's
-- connections, and the same per worker, so that what a dead worker held
-- can be taken away.  The user's first connection is announced, unless
-- the room is over chat_presence_events_max users.
--
-- KEYS[1]  the room's users          {R}:presence  (user -> count)
-- KEYS[2]  the same per worker       {R}:presence:w  ("W\nuser" -> count)
-- ARGV[1]  the user
-- ARGV[2]  "W\nuser", W the worker
-- ARGV[3]  the room's channel
-- ARGV[4]  the room
-- ARGV[5]  chat_presence_events_max, "0": no limit

redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1
   and (ARGV[5] == '0'
        or redis.call('HLEN', KEYS[1]) <= tonumber(ARGV[5])) then
  redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'presence',
    room = ARGV[4], user = ARGV[1], event = 'join'}))
end
