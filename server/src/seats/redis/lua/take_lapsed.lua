-- ARGV: time source, lapse cap, budget. The lapses not yet handed out.
local now = now_secs()
reap(now, tonumber(ARGV[3]))
local out = redis.call('LRANGE', LAPSED, 0, -1)
redis.call('DEL', LAPSED)
return out
