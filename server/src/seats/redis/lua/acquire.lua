-- ARGV: time source, lapse cap, budget, limit, new session (JSON without `acq` and
-- `seen`), replaced id, its hardware id, the new session's id, its TTL, its license,
-- seats it may grant per clock hour (0: no bound; GRANTS holds `hour:count`).
-- The new session's JSON is completed by concatenation, not decoded and encoded again:
-- that was a fifth of the script's time.
-- On one Redis (not a cluster, where they are in other slots) KEYS 8 and 9 are the new
-- session's index shard and the replaced session's, and KEYS[10], given when this
-- instance has not put the license there lately, the license index: kept here so that
-- an acquire is one round trip.
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local ended = ''
if ARGV[6] ~= '' then
  local raw = redis.call('HGET', SESS, ARGV[6])
  if raw and cjson.decode(raw).hw == ARGV[7] then
    drop(ARGV[6])
    ended = raw
    if KEYS[9] then
      redis.call('HDEL', KEYS[9], ARGV[6])
    end
  end
end
local in_use = redis.call('ZCOUNT', ONLINE, '(' .. now, '+inf')
if in_use >= tonumber(ARGV[4]) then
  return {'full', tostring(in_use), ended}
end
local hour = now - now % 3600
local granted = 0
local g = redis.call('GET', GRANTS)
if g then
  local h, n = string.match(g, '^(%d+):(%d+)$')
  if h and tonumber(h) == hour then
    granted = tonumber(n)
  end
end
local per_hour = tonumber(ARGV[11])
if per_hour > 0 and granted >= per_hour then
  return {'budget', tostring(hour + 3600 - now), ended}
end
redis.call('SET', GRANTS, hour .. ':' .. (granted + 1), 'EX', 7200)
local id = ARGV[8]
local enc = '{"acq":' .. now .. ',"seen":' .. now .. ',' .. string.sub(ARGV[5], 2)
redis.call('HSET', SESS, id, enc)
redis.call('ZADD', ONLINE, now + tonumber(ARGV[9]), id)
redis.call('ZADD', IDS, 0, id)
redis.call('SET', LIMIT, ARGV[4])
if KEYS[8] then
  redis.call('HSET', KEYS[8], id, ARGV[10])
end
if KEYS[10] then
  redis.call('ZADD', KEYS[10], 0, ARGV[10])
end
return {'granted', enc, ended}
