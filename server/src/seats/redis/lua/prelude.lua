-- Shared by every script: the clock and the lazy, bounded reaping.
local ONLINE, OFFLINE, SESS, LAPSED, IDS, LIMIT, GRANTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local function now_secs()
  if string.sub(ARGV[1], 1, 1) == '=' then
    return tonumber(string.sub(ARGV[1], 2))
  end
  local t = redis.call('TIME')
  return tonumber(t[1])
end
local function reap(now, budget)
  local due = redis.call('ZRANGEBYSCORE', ONLINE, '-inf', now, 'LIMIT', 0, budget)
  for _, id in ipairs(due) do
    redis.call('ZREM', ONLINE, id)
    local raw = redis.call('HGET', SESS, id)
    if raw then
      local s = cjson.decode(raw)
      s.off_since = s.seen
      s.off_until = s.seen + s.ttl + s.grace
      local enc = cjson.encode(s)
      redis.call('RPUSH', LAPSED, enc)
      if s.grace > 0 and s.off_until > now then
        redis.call('HSET', SESS, id, enc)
        redis.call('ZADD', OFFLINE, s.off_until, id)
      else
        redis.call('HDEL', SESS, id)
        redis.call('ZREM', IDS, id)
      end
    end
  end
  if #due > 0 then
    redis.call('LTRIM', LAPSED, -tonumber(ARGV[2]), -1)
  end
  local gone = redis.call('ZRANGEBYSCORE', OFFLINE, '-inf', now, 'LIMIT', 0, budget)
  for _, id in ipairs(gone) do
    redis.call('ZREM', OFFLINE, id)
    redis.call('HDEL', SESS, id)
    redis.call('ZREM', IDS, id)
  end
end
local function drop(id)
  redis.call('HDEL', SESS, id)
  redis.call('ZREM', ONLINE, id)
  redis.call('ZREM', OFFLINE, id)
  redis.call('ZREM', IDS, id)
end
