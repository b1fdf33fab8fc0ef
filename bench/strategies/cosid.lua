-- cosid.lua - CosId's SegmentChainId (me.ahoo.cosid.segment): segments of
-- `step` IDs (100, IdSegmentDistributor's default) kept a safe distance
-- (10 segments here) ahead of the one in use by a prefetch worker,
-- several segments fetched in one store call
-- (nextIdSegmentChain); when a caller finds no segment ready (it is
-- "hungry"), the prefetch distance grows (doubled, up to a cap) so the
-- chain runs further ahead. Here: the batch is distance * step, fetched
-- as soon as the previous batch is installed (always a batch ahead: the
-- watermark is the whole batch), the distance doubling whenever a call
-- waited since the previous fetch.
local STEP, SAFE_DISTANCE, MAX_DISTANCE = 100, 10, 10000
local distance = {}   -- per counter
return {
  defaults = { batch = STEP * SAFE_DISTANCE, adaptive = 0 },
  policy = function(s)
    local d = distance[s.counter] or SAFE_DISTANCE
    if s.waits > 0 and s.fetches > 1 and d * 2 <= MAX_DISTANCE then
      d = d * 2 -- hungry: run further ahead
    end
    distance[s.counter] = d
    local b = d * STEP
    return b, b -- fetch the next as soon as this one is in use
  end,
}
