-- A connection of a user opened, or is alive: the user's presence key
-- lives another ARGV[1] ms, and so does this connection beside it.
--
-- KEYS[1]  the user's presence key   presence:user:U
-- KEYS[2]  the user's connections    presence:conns:U  (conn -> expiry)
-- ARGV[1]  chat_presence_ttl in ms
-- ARGV[2]  the connection: "worker#number"

--#include time.lua
redis.call('ZADD', KEYS[2], now + ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
