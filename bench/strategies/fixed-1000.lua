-- fixed-1000.lua - fixed batches: every fetch takes exactly 1,000 IDs and
-- the next one starts at the default low watermark (25% of the batch
-- left), the rule of a hand-tuned INCRBY pool (the original metaprime
-- feature with batch=1000 and adaptive sizing off).
return {
  defaults = { batch = 1000, adaptive = 0, low_watermark = 25 },
}
