-- ARGV: time source, lapse cap, budget. Every session of the license.
local now = now_secs()
reap(now, tonumber(ARGV[3]))
return redis.call('HVALS', SESS)
