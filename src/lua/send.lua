-- Numbers a message, keeps it, and publishes it, in one atomic step: a
-- room's channel carries its messages in seq order, and so does the
-- notification stream.
--
-- KEYS[1]  the room's seq            {R}:seq
-- KEYS[2]  its recent messages       {R}:recent
-- KEYS[3]  the durable stream        stream (KEYS[1] when not durable)
-- KEYS[4]  the resend key            {R}:id:LEN:USER:ID (KEYS[1] if none)
-- KEYS[5]  the notification stream   notify (KEYS[1] without chat_notify)
-- ARGV[1]  the message event up to its seq
-- ARGV[2]  the message event after its seq
-- ARGV[3]  how many recent messages to keep
-- ARGV[4]  the room's channel
-- ARGV[5]  "1": durable (the seq key must exist, or be seeded first)
-- ARGV[6]  "1": KEYS[4] is a resend key
-- ARGV[7]  chat_notify_max, "0": no notification
-- ARGV[8]  with chat_notify: the room
-- ARGV[9]  ... the msg_id
-- ARGV[10] ... the user
-- ARGV[11] ... the ts
-- ARGV[12] ... the text
--
-- Returns {seq, 1} for a resend, {seq, 0} for a new message, {-1, 0}
-- when the seq key is missing and must be seeded from Postgres.

if ARGV[6] == '1' then
  local seq = redis.call('GET', KEYS[4])
  if seq then return {tonumber(seq), 1} end
end
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, 0}
end
local seq = redis.call('INCR', KEYS[1])
local msg = ARGV[1] .. seq .. ARGV[2]
local keep = tonumber(ARGV[3])
if keep > 0 then
  redis.call('ZADD', KEYS[2], seq, msg)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -keep - 1)
end
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[3], '*', 'm', msg)
end
if ARGV[7] ~= '0' then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*',
             'room', ARGV[8], 'seq', seq, 'msg_id', ARGV[9],
             'user', ARGV[10], 'ts', ARGV[11], 'text', ARGV[12])
end
if ARGV[6] == '1' then
  redis.call('SET', KEYS[4], seq, 'EX', 600)
end
redis.call('PUBLISH', ARGV[4], msg)
return {seq, 0}
