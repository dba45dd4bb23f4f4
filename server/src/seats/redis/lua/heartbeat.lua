-- ARGV: time source, lapse cap, budget, session id, the shortest spacing of renewals
-- (seconds). A heartbeat sooner than that after the last one answers `soon:<wait>:` and
-- the session, unchanged.
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local score = redis.call('ZSCORE', ONLINE, ARGV[4])
if not score or tonumber(score) <= now then
  return ''
end
local raw = redis.call('HGET', SESS, ARGV[4])
if not raw then
  return ''
end
local s = cjson.decode(raw)
local gap = tonumber(ARGV[5])
if now - s.seen < gap then
  return 'soon:' .. (s.seen + gap - now) .. ':' .. raw
end
s.seen = now
local enc = cjson.encode(s)
redis.call('HSET', SESS, s.id, enc)
redis.call('ZADD', ONLINE, now + s.ttl, s.id)
return enc
