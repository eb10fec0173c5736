-- now: the server's clock in milliseconds, the same for every worker
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
