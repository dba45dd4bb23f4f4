-- ARGV: time source, lapse cap, session id, tier, token expiry.
local raw = redis.call('HGET', SESS, ARGV[3])
if raw then
  local s = cjson.decode(raw)
  s.tier = ARGV[4]
  s.exp = tonumber(ARGV[5])
  redis.call('HSET', SESS, ARGV[3], cjson.encode(s))
end
return ''
