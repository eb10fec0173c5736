-- Sets a room's seq to at least ARGV[1] (the last seq Postgres has),
-- never lower: another worker may have seeded and sent meanwhile.
--
-- KEYS[1]  the room's seq            {R}:seq
-- KEYS[2]  its recent messages       {R}:recent
-- ARGV[1]  the last seq Postgres has
--
-- Returns the seq set.

local seq = tonumber(ARGV[1])
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] then seq = math.max(seq, tonumber(top[2])) end
local cur = redis.call('GET', KEYS[1])
if cur then seq = math.max(seq, tonumber(cur)) end
redis.call('SET', KEYS[1], seq)
return seq
