-- redis.lua - counters in Redis (INCRBY), shared by every host that uses
-- the same server and prefix.
--
--   idprime next --config config/examples/redis.lua inode -n 5
--
-- The server should not evict keys (maxmemory-policy noeviction) and should
-- persist them (appendonly yes); the plugin warns at open otherwise. A
-- store that loses a counter answers values already handed out: the engine
-- refuses them instead of serving duplicates.
local ms = 0.001

return {
  uri = "redis://127.0.0.1:6379/0",

  defaults = {
    timeout_ms = 2000,
    prefix = "idprime:",  -- keys are idprime:inode, idprime:chunk, ...
    batch = 512,
  },

  counters = {
    inode = { batch = 1024 },
    chunk = { batch = 8192, low_watermark = 50 },
  },

  -- Aim for one round trip per 100 ms of consumption at the rate the last
  -- batch was used, within 64..262144; a slow fetch (over 20 ms) also
  -- doubles the batch so the next one comes less often.
  policy = function(s)
    if s.rate <= 0 then
      return nil
    end
    local want = math.floor(s.rate * 0.1)
    if s.fetch_seconds > 20 * ms then
      want = math.max(want, s.batch * 2)
    end
    return math.max(64, math.min(want, 262144))
  end,
}
