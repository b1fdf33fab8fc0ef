-- juicefs.lua - JuiceFS's metadata engine (pkg/meta/base.go): inodes come
-- in batches of 1,024 (inodeBatch = 1 << 10), and when the IDs left fall
-- to inodeNeedPrefetch = utils.JitterIt(inodeBatch * 0.1), about 102 with
-- a jitter drawn once per process (to spread transaction conflicts), the
-- next batch is prefetched in a goroutine; slice (chunk) IDs come in
-- batches of 4,096 (sliceIdBatch = 4 << 10) fetched synchronously when the
-- current batch is used up, with no prefetch. Counters named chunk or
-- slice get the slice rule; every other counter the inode rule.
local INODES, SLICES = 1024, 4096
-- JitterIt: the value scaled by a random factor in [0.8, 1.2)
local need = math.floor(INODES * 0.1 * (0.8 + 0.4 * math.random()))
return {
  defaults = { batch = INODES, adaptive = 0 },
  counters = { chunk = { batch = SLICES }, slice = { batch = SLICES } },
  policy = function(s)
    if s.counter == "chunk" or s.counter == "slice" then
      return SLICES, -1
    end
    return INODES, need
  end,
}
