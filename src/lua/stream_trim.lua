-- The durable stream's housekeeping.  A consumer that holds nothing,
-- has not read for ARGV[2] ms and whose worker has left the workers'
-- registry is a gone worker's: deleted, or every restart would leave one
-- behind.  Then the stream is trimmed up to the oldest entry not yet
-- acknowledged, and what is not yet written to Postgres is measured.
--
-- KEYS[1]  the durable stream        stream
-- KEYS[2]  the workers' registry     workers
-- ARGV[1]  the consumer group        writers
-- ARGV[2]  how long a gone consumer has been idle, in ms
--
-- Returns {trimmed, backlog, age}: how many entries were trimmed; how
-- many are not written yet: read by no consumer (the group's lag) or
-- read and not acknowledged (pending); and how old the oldest of those
-- is, in ms of the server's clock (0 when there is none).  0 alone when
-- the group does not exist.

--#include time.lua
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1],
                              ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] > tonumber(ARGV[2]) then
    local live = redis.call('ZSCORE', KEYS[2], f['name'])
    if not live or tonumber(live) < now then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1],
                 f['name'])
    end
  end
end
local function id(s)
  local a, b = string.match(s, '(%d+)-(%d+)')
  return tonumber(a), tonumber(b)
end
local last, lag
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[1] then
    last, lag = f['last-delivered-id'], f['lag']
  end
end
if not last then return 0 end
local p = redis.call('XPENDING', KEYS[1], ARGV[1])
local min = last
if p[1] > 0 then
  local a1, b1 = id(p[2])
  local a2, b2 = id(last)
  if a1 < a2 or (a1 == a2 and b1 < b2) then min = p[2] end
end
local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', min)
-- no lag when Redis cannot tell it (before 7.0, after an XDEL): what
-- the stream holds beyond the pending entries and the last delivered
-- one, exact unless acknowledged entries sit between them
if not lag then
  lag = redis.call('XLEN', KEYS[1]) - p[1]
  if #redis.call('XRANGE', KEYS[1], last, last) > 0 then
    lag = lag - 1
  end
  if lag < 0 then lag = 0 end
end
-- the oldest unwritten entry: the first pending one, else the first
-- one after the last delivered
local oldest
if p[1] > 0 then
  oldest = p[2]
elseif lag > 0 then
  local e = redis.call('XRANGE', KEYS[1], '(' .. last, '+',
                       'COUNT', 1)
  if e[1] then oldest = e[1][1] end
end
local age = 0
if oldest then
  age = math.max(0, now - id(oldest))
end
return {trimmed, p[1] + lag, age}
