
/*
 * Copyright (C) ngx_chat authors
 */


/* written by src/lua/embed.pl from src/lua/: do not edit */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_scripts.h"


static u_char  ngx_chat_script_claim[] =
    "if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return {} end\n"
    "local rooms = redis.call('SMEMBERS', KEYS[2])\n"
    "redis.call('DEL', KEYS[2])\n"
    "return rooms\n";

static u_char  ngx_chat_script_kick[] =
    "if ARGV[3] ~= '0' then\n"
    "  redis.call('SET', KEYS[1], 1, 'EX', ARGV[3])\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[2], ARGV[4])\n"
    "return tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or 0)\n";

static u_char  ngx_chat_script_registry[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])\n"
    "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
    "                  'LIMIT', 0, 5)\n";

static u_char  ngx_chat_script_room_join[] =
    "redis.call('HINCRBY', KEYS[2], ARGV[2], 1)\n"
    "if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1\n"
    "   and (ARGV[5] == '0'\n"
    "        or redis.call('HLEN', KEYS[1]) <= tonumber(ARGV[5])) then\n"
    "  redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'presence',\n"
    "    room = ARGV[4], user = ARGV[1], event = 'join'}))\n"
    "end\n";

static u_char  ngx_chat_script_room_leave[] =
    "local c = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)\n"
    "if c <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end\n"
    "if c < 0 then return end\n"
    "if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  if ARGV[5] == '0'\n"
    "     or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[5]) then\n"
    "    redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'presence',\n"
    "      room = ARGV[4], user = ARGV[1], event = 'leave'}))\n"
    "  end\n"
    "end\n";

static u_char  ngx_chat_script_room_sweep[] =
    "local all = redis.call('HGETALL', KEYS[2])\n"
    "local p = ARGV[1]\n"
    "for i = 1, #all, 2 do\n"
    "  local f = all[i]\n"
    "  if string.sub(f, 1, #p) == p then\n"
    "    local user = string.sub(f, #p + 1)\n"
    "    local c = tonumber(all[i + 1])\n"
    "    redis.call('HDEL', KEYS[2], f)\n"
    "    if c > 0 and redis.call('HINCRBY', KEYS[1], user, -c) <= 0 then\n"
    "      redis.call('HDEL', KEYS[1], user)\n"
    "      if ARGV[4] == '0'\n"
    "         or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[4]) then\n"
    "        redis.call('PUBLISH', ARGV[2],\n"
    "          cjson.encode({type = 'presence', room = ARGV[3],\n"
    "                        user = user, event = 'leave'}))\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n";

static u_char  ngx_chat_script_seed[] =
    "local seq = tonumber(ARGV[1])\n"
    "local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
    "if top[2] then seq = math.max(seq, tonumber(top[2])) end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then seq = math.max(seq, tonumber(cur)) end\n"
    "redis.call('SET', KEYS[1], seq)\n"
    "return seq\n";

static u_char  ngx_chat_script_send[] =
    "if ARGV[6] == '1' then\n"
    "  local seq = redis.call('GET', KEYS[4])\n"
    "  if seq then return {tonumber(seq), 1} end\n"
    "end\n"
    "if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  return {-1, 0}\n"
    "end\n"
    "local seq = redis.call('INCR', KEYS[1])\n"
    "local msg = ARGV[1] .. seq .. ARGV[2]\n"
    "local keep = tonumber(ARGV[3])\n"
    "if keep > 0 then\n"
    "  redis.call('ZADD', KEYS[2], seq, msg)\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -keep - 1)\n"
    "end\n"
    "if ARGV[5] == '1' then\n"
    "  redis.call('XADD', KEYS[3], '*', 'm', msg)\n"
    "end\n"
    "if ARGV[7] ~= '0' then\n"
    "  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*',\n"
    "             'room', ARGV[8], 'seq', seq, 'msg_id', ARGV[9],\n"
    "             'user', ARGV[10], 'ts', ARGV[11], 'text', ARGV[12])\n"
    "end\n"
    "if ARGV[6] == '1' then\n"
    "  redis.call('SET', KEYS[4], seq, 'EX', 600)\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[4], msg)\n"
    "return {seq, 0}\n";

static u_char  ngx_chat_script_stream_trim[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1],\n"
    "                              ARGV[1])) do\n"
    "  local f = {}\n"
    "  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
    "  if f['pending'] == 0 and f['idle'] > tonumber(ARGV[2]) then\n"
    "    local live = redis.call('ZSCORE', KEYS[2], f['name'])\n"
    "    if not live or tonumber(live) < now then\n"
    "      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1],\n"
    "                 f['name'])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local function id(s)\n"
    "  local a, b = string.match(s, '(%d+)-(%d+)')\n"
    "  return tonumber(a), tonumber(b)\n"
    "end\n"
    "local last, lag\n"
    "for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
    "  local f = {}\n"
    "  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end\n"
    "  if f['name'] == ARGV[1] then\n"
    "    last, lag = f['last-delivered-id'], f['lag']\n"
    "  end\n"
    "end\n"
    "if not last then return 0 end\n"
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1])\n"
    "local min = last\n"
    "if p[1] > 0 then\n"
    "  local a1, b1 = id(p[2])\n"
    "  local a2, b2 = id(last)\n"
    "  if a1 < a2 or (a1 == a2 and b1 < b2) then min = p[2] end\n"
    "end\n"
    "local trimmed = redis.call('XTRIM', KEYS[1], 'MINID', min)\n"
    "if not lag then\n"
    "  lag = redis.call('XLEN', KEYS[1]) - p[1]\n"
    "  if #redis.call('XRANGE', KEYS[1], last, last) > 0 then\n"
    "    lag = lag - 1\n"
    "  end\n"
    "  if lag < 0 then lag = 0 end\n"
    "end\n"
    "local oldest\n"
    "if p[1] > 0 then\n"
    "  oldest = p[2]\n"
    "elseif lag > 0 then\n"
    "  local e = redis.call('XRANGE', KEYS[1], '(' .. last, '+',\n"
    "                       'COUNT', 1)\n"
    "  if e[1] then oldest = e[1][1] end\n"
    "end\n"
    "local age = 0\n"
    "if oldest then\n"
    "  age = math.max(0, now - id(oldest))\n"
    "end\n"
    "return {trimmed, p[1] + lag, age}\n";

static u_char  ngx_chat_script_user_gone[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "redis.call('ZREM', KEYS[2], ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
    "if redis.call('ZCARD', KEYS[2]) == 0 then\n"
    "  redis.call('DEL', KEYS[1], KEYS[2])\n"
    "end\n";

static u_char  ngx_chat_script_user_seen[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "redis.call('ZADD', KEYS[2], now + ARGV[1], ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[1])\n"
    "redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])\n";


/* by NGX_CHAT_SCRIPT_* */

ngx_str_t  ngx_chat_scripts[] = {
    ngx_string(ngx_chat_script_claim),
    ngx_string(ngx_chat_script_kick),
    ngx_string(ngx_chat_script_registry),
    ngx_string(ngx_chat_script_room_join),
    ngx_string(ngx_chat_script_room_leave),
    ngx_string(ngx_chat_script_room_sweep),
    ngx_string(ngx_chat_script_seed),
    ngx_string(ngx_chat_script_send),
    ngx_string(ngx_chat_script_stream_trim),
    ngx_string(ngx_chat_script_user_gone),
    ngx_string(ngx_chat_script_user_seen)
};
