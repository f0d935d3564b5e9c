-- INFO semdex for prometheus-redis-exporter (--script this file): the
-- exporter keeps only the INFO fields it knows, so this script hands it the
-- semdex module's section as redis_script_values{key="..."}:
--   semdex_papers, semdex_searches, ...        the node's totals
--   semdex_shard_07_papers, ..._searches, ..._search_usec
--                                              per shard key (semdex:{shard-07})
-- Read-only, O(shard keys); the exporter runs it on every scrape.
local info = redis.call('INFO', 'semdex')
local out = {}
for line in string.gmatch(info, '[^\r\n]+') do
  local k, v = string.match(line, '^([%w_]+):(.*)$')
  if k and tonumber(v) then
    out[#out + 1] = k
    out[#out + 1] = v
  elseif k then
    for f, x in string.gmatch(v, '([%w_]+)=([%d%.]+)') do
      out[#out + 1] = k .. '_' .. f
      out[#out + 1] = x
    end
  end
end
return out
