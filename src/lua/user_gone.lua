-- A connection of a user closed: the user stays online while another of
-- its connections has not expired; the last one deletes both keys.
--
-- KEYS[1]  the user's presence key   presence:user:U
-- KEYS[2]  the user's connections    presence:conns:U
-- ARGV[1]  chat_presence_ttl in ms (unused)
-- ARGV[2]  the connection: "worker#number"

--#include time.lua
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
end
