-- chat_admin's kick: the user is banned from the room for ARGV[3]
-- seconds (none if "0"), every worker hears of it on the control
-- channel, and the answer is how many of the user's connections the
-- room's presence counts, on every host.  The ban is set before the
-- workers hear of it, so that no join of theirs misses both.
--
-- KEYS[1]  the ban                   {R}:ban:U
-- KEYS[2]  the room's users          {R}:presence  (user -> count)
-- ARGV[1]  the user
-- ARGV[2]  the control channel
-- ARGV[3]  the ban in seconds, "0": none
-- ARGV[4]  the command for the workers, JSON

if ARGV[3] ~= '0' then
  redis.call('SET', KEYS[1], 1, 'EX', ARGV[3])
end
redis.call('PUBLISH', ARGV[2], ARGV[4])
return tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or 0)
