-- Claims a dead worker, once: the worker that removes it from the
-- registry gets its rooms to sweep (room_sweep.lua).
--
-- KEYS[1]  the workers' registry     workers
-- KEYS[2]  the dead worker's rooms   worker:W:rooms
-- ARGV[1]  the dead worker W
--
-- Returns the rooms, none if another worker claimed it first.

if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return {} end
local rooms = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
return rooms
