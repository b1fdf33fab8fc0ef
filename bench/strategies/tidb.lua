-- tidb.lua - TiDB's AUTO_INCREMENT cache: each TiDB server takes a fixed
-- range of 30,000 IDs (AUTO_ID_CACHE's default, autoid.DefaultAutoIDStep)
-- and fetches the next range from TiKV only when the current one is used
-- up, synchronously: the statement that finds the cache empty waits.
local STEP = 30000
return {
  defaults = { batch = STEP, adaptive = 0 },
  policy = function(s)
    return STEP, -1 -- -1: never fetch ahead
  end,
}
