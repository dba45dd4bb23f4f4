-- ARGV: time source, lapse cap, budget, after id ('' for the first), most sessions,
-- state ('', 'online', 'offline'), most ids looked at. Answers the last id looked at,
-- whether ids may follow it ('more' or 'done'), then the sessions of the page.
local now = now_secs()
reap(now, tonumber(ARGV[3]))
if redis.call('ZCARD', IDS) < redis.call('HLEN', SESS) then
  -- Sessions of an earlier version, which kept no id index.
  for _, id in ipairs(redis.call('HKEYS', SESS)) do
    redis.call('ZADD', IDS, 0, id)
  end
end
local from = '-'
if ARGV[4] ~= '' then
  from = '(' .. ARGV[4]
end
local want, state, scan = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local ids = redis.call('ZRANGEBYLEX', IDS, from, '+', 'LIMIT', 0, scan)
local out = {ARGV[4], 'done'}
if #ids == scan then
  out[2] = 'more'
end
for i, id in ipairs(ids) do
  out[1] = id
  local raw = redis.call('HGET', SESS, id)
  if raw then
    local keep = true
    if state ~= '' then
      local score = redis.call('ZSCORE', ONLINE, id)
      local online = score ~= false and score ~= nil and tonumber(score) > now
      keep = (state == 'online') == online
    end
    if keep then
      out[#out + 1] = raw
      if #out - 2 >= want then
        if i < #ids then
          out[2] = 'more'
        end
        break
      end
    end
  else
    redis.call('ZREM', IDS, id)
  end
end
return out
