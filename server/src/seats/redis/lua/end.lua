-- ARGV: time source, lapse cap, budget, session id. Ends it, online or offline. On one
-- Redis KEYS[8] is its index shard.
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local raw = redis.call('HGET', SESS, ARGV[4])
if not raw then
  return ''
end
drop(ARGV[4])
if KEYS[8] then
  redis.call('HDEL', KEYS[8], ARGV[4])
end
return raw
