-- This worker is alive for another ARGV[2] ms; and which workers have
-- not said so in time.
--
-- KEYS[1]  the workers' registry     workers  (worker -> expiry)
-- ARGV[1]  this worker
-- ARGV[2]  the registry's TTL in ms
--
-- Returns up to 5 dead workers.

--#include time.lua
redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,
                  'LIMIT', 0, 5)
