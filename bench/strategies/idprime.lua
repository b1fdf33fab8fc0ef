-- idprime.lua - idprime's own adaptive rule, as the engine runs it by
-- default: no policy, so the engine sizes every batch itself (framework/
-- src/engine.c, "Adaptive batches"): with r the measured demand in IDs/s
-- and T the fetch time, the next fetch starts when fewer than
-- max(low_watermark% of the batch, 1.5rT) IDs are left, and the batch is
-- 2rT plus what the callers will lack before it lands, never below `batch`
-- (256) nor above `max_batch` (65536).
return {
  defaults = { adaptive = 1 },
}
