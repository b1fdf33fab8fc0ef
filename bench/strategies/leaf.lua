-- leaf.lua - Meituan Leaf's segment mode (SegmentIDGenImpl): a double
-- buffer whose next segment is loaded in the background once 10% of the
-- current one is used (the idle IDs fall below 0.9 * step), and a dynamic
-- step (updateSegmentFromDb): when the previous segment lasted under
-- SEGMENT_DURATION (15 minutes) the step doubles (up to MAX_STEP,
-- 1,000,000); under twice that it stays; longer, it halves (never below
-- the configured step). The initial step is 2,000, as in Leaf's example
-- leaf_alloc row.
--
-- Scaled to the run's length: a bench run of N seconds stands for an
-- 8-hour day, so 15 minutes become N/32 seconds (the bench passes
-- "seconds=N" as the script's `...`; 10 s without it).
local STEP, MAX_STEP = 2000, 1000000
local run_s = 10
for _, a in ipairs({...}) do
  local v = a:match("^seconds=(%d+)$")
  if v then run_s = tonumber(v) end
end
local SEGMENT_DURATION = 15 * 60 * run_s / (8 * 3600)

local step = {}   -- per counter
return {
  defaults = { batch = STEP, adaptive = 0 },
  policy = function(s)
    local cur = step[s.counter] or STEP
    if s.fetches > 1 then
      -- s.since_fetch: the time since the previous segment was fetched
      if s.since_fetch < SEGMENT_DURATION then
        if cur * 2 <= MAX_STEP then cur = cur * 2 end
      elseif s.since_fetch >= 2 * SEGMENT_DURATION then
        if cur // 2 >= STEP then cur = cur // 2 end
      end
    end
    step[s.counter] = cur
    -- the segment just fetched: load the next once 10% of it is used
    return cur, s.batch * 90 // 100
  end,
}
