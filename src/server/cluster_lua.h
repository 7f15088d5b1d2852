/*
 * The cluster's Lua scripts (cluster.c): what must happen in Redis at
 * once or not at all.  Key names are built from ARGV[1], the namespace
 * ("chat:"), where a script must reach another server's keys: fine for one
 * Redis, which is what docs/cluster.md describes (sharding goes by room).
 *
 * Values: members:<node> maps a member id to "name<TAB>nick<TAB>room";
 * nicks maps a lower-case nick to its owner "node<TAB>incarnation<TAB>id";
 * topics maps a lower-case room ("#dev") to "by<TAB>topic"; rooms is the
 * set of lower-case rooms whose stream may exist (but #lobby).  A room's
 * stream is <prefix>room:<name without '#', lower case>.
 */
#ifndef CLUSTER_LUA_H
#define CLUSTER_LUA_H

/*
 * Heartbeat.  KEYS: nodes incs inbox:me.  ARGV: prefix node inc ttl_ms.
 * Redis's own clock scores the nodes, so the servers' clocks never
 * disagree about who is late.  Returns {Redis's time in ms, 1 if we were
 * still among the nodes (0: reaped, or the first beat)}.
 */
static const char LUA_BEAT[] =
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "local was = redis.call('ZSCORE', KEYS[1], ARGV[2]) and 1 or 0\n"
        "redis.call('ZADD', KEYS[1], now, ARGV[2])\n"
        "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
        "redis.call('PEXPIRE', KEYS[3], ARGV[4])\n"
        "return {now, was}\n";

/*
 * The reaper.  KEYS: nodes incs nicks.  ARGV: prefix mode node inc
 * timeout_ms maxlen(#lobby) maxlen(other rooms).  mode "expired": every node whose heartbeat is older
 * than timeout_ms; "self": node itself (an orderly shutdown); "stale":
 * node if its recorded incarnation is not inc (a run that died and was
 * restarted under the same name).  For each: one "left" notice per member
 * into its room's stream, its nicks released, its keys gone; all in one
 * script, so exactly one server does it, once; then the rooms' readers
 * are woken (a PUBLISH on each room's wake channel).  Returns {node,
 * count, ...}.
 */
static const char LUA_REAP[] =
        "local gone = {}\n"
        "if ARGV[2] == 'expired' then\n"
        "  local t = redis.call('TIME')\n"
        "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "  gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[5]))\n"
        "elseif ARGV[2] == 'self' then\n"
        "  gone = {ARGV[3]}\n"
        "else\n"
        "  local inc = redis.call('HGET', KEYS[2], ARGV[3])\n"
        "  if inc and inc ~= ARGV[4] then gone = {ARGV[3]} end\n"
        "end\n"
        "local out, woken = {}, {}\n"
        "for _, node in ipairs(gone) do\n"
        "  local why = 'server ' .. node .. ' is gone'\n"
        "  if ARGV[2] == 'self' then why = 'server ' .. node .. ' shut down' end\n"
        "  if ARGV[2] == 'stale' then why = 'server ' .. node .. ' restarted' end\n"
        "  local mkey = ARGV[1] .. 'members:' .. node\n"
        "  local all = redis.call('HGETALL', mkey)\n"
        "  local n = 0\n"
        "  for i = 1, #all, 2 do\n"
        "    local name, nick, room = string.match(all[i + 1], '^([^\\t]*)\\t?([^\\t]*)\\t?(.*)$')\n"
        "    if not room or room == '' then room = '#lobby' end\n"
        "    if nick and nick ~= '' then\n"
        "      local ln = string.lower(nick)\n"
        "      local owner = redis.call('HGET', KEYS[3], ln)\n"
        "      if owner and string.sub(owner, 1, #node + 1) == node .. '\\t' then\n"
        "        redis.call('HDEL', KEYS[3], ln)\n"
        "      end\n"
        "    end\n"
        "    local stream = ARGV[1] .. 'room:' .. string.lower(string.sub(room, 2))\n"
        "    local maxlen = room == '#lobby' and ARGV[6] or ARGV[7]\n"
        "    woken[string.lower(string.sub(room, 2))] = true\n"
        "    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'o', node, 'k', 'n',\n"
        "               'm', '* ' .. name .. ' left (' .. why .. ')\\r\\n')\n"
        "    n = n + 1\n"
        "  end\n"
        "  redis.call('DEL', mkey)\n"
        "  redis.call('ZREM', KEYS[1], node)\n"
        "  redis.call('HDEL', KEYS[2], node)\n"
        "  out[#out + 1] = node\n"
        "  out[#out + 1] = n\n"
        "end\n"
        "for room in pairs(woken) do redis.call('PUBLISH', ARGV[1] .. 'wake:' .. room, '') end\n"
        "return out\n";

/*
 * A nick for a member.  KEYS: nicks members:me.  ARGV: new(lower) owner
 * old(lower or "") id "name<TAB>nick".  The first to ask wins; the loser
 * sees someone else's owner.  Returns 1 (granted) or 0 (taken).
 */
static const char LUA_CLAIM[] =
        "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
        "if cur and cur ~= ARGV[2] then return 0 end\n"
        "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
        "if ARGV[3] ~= '' and ARGV[3] ~= ARGV[1] and\n"
        "   redis.call('HGET', KEYS[1], ARGV[3]) == ARGV[2] then\n"
        "  redis.call('HDEL', KEYS[1], ARGV[3])\n"
        "end\n"
        "redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])\n"
        "return 1\n";

/* A member left.  KEYS: nicks members:me.  ARGV: nick(lower or "") owner id
 * asked(lower or "": a nick it asked for and may be granted after it left). */
static const char LUA_LEAVE[] =
        "for _, n in ipairs({ARGV[1], ARGV[4]}) do\n"
        "  if n ~= '' and redis.call('HGET', KEYS[1], n) == ARGV[2] then\n"
        "    redis.call('HDEL', KEYS[1], n)\n"
        "  end\n"
        "end\n"
        "redis.call('HDEL', KEYS[2], ARGV[3])\n"
        "return 1\n";

/*
 * A private message.  KEYS: nicks.  ARGV: prefix nick(lower) message
 * ttl_ms.  Into the inbox stream of the nick's server, addressed to its
 * member by incarnation and id, and that server woken.  Returns 1, or 0
 * if nobody has the nick.
 */
static const char LUA_TELL[] =
        "local o = redis.call('HGET', KEYS[1], ARGV[2])\n"
        "if not o then return 0 end\n"
        "local node, inc, id = string.match(o, '^(.*)\\t([^\\t]*)\\t([^\\t]*)$')\n"
        "if not node then return 0 end\n"
        "local key = ARGV[1] .. 'inbox:' .. node\n"
        "redis.call('XADD', key, 'MAXLEN', '~', 1000, '*', 't', inc .. ':' .. id, 'm', ARGV[3])\n"
        "redis.call('PEXPIRE', key, ARGV[4])\n"
        "redis.call('PUBLISH', ARGV[1] .. 'wake:inbox:' .. node, '')\n"
        "return 1\n";

/*
 * The roster: everyone on the other servers, and the topics.  KEYS: nodes
 * topics rooms.  ARGV: prefix node.  A room nobody is in any more
 * (#lobby aside) disappears here, its stream and topic with it: the
 * script is atomic, so a member's HSET (sent before its server reads or
 * writes the room) is either seen, and the room kept, or comes after,
 * into a room that starts afresh.  Returns {the others' member values,
 * {room, "by<TAB>topic", ...}}.
 */
static const char LUA_ROSTER[] =
        "local out, used = {}, {}\n"
        "for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
        "  for _, v in ipairs(redis.call('HVALS', ARGV[1] .. 'members:' .. node)) do\n"
        "    local room = string.match(v, '^[^\\t]*\\t[^\\t]*\\t(.+)$') or '#lobby'\n"
        "    used[string.lower(room)] = true\n"
        "    if node ~= ARGV[2] then out[#out + 1] = v end\n"
        "  end\n"
        "end\n"
        "for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do\n"
        "  if not used[room] then\n"
        "    redis.call('DEL', ARGV[1] .. 'room:' .. string.sub(room, 2))\n"
        "    redis.call('HDEL', KEYS[2], room)\n"
        "    redis.call('SREM', KEYS[3], room)\n"
        "  end\n"
        "end\n"
        "local topics = redis.call('HGETALL', KEYS[2])\n"
        "local kept = {}\n"
        "for i = 1, #topics, 2 do\n"
        "  if used[topics[i]] or topics[i] == '#lobby' then\n"
        "    kept[#kept + 1] = topics[i]\n"
        "    kept[#kept + 1] = topics[i + 1]\n"
        "  else\n"
        "    redis.call('HDEL', KEYS[2], topics[i])\n"
        "  end\n"
        "end\n"
        "return {out, kept}\n";

#endif /* CLUSTER_LUA_H */
