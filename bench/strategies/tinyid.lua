-- tinyid.lua - Tinyid (didi/tinyid) segments: a fixed step per biz type
-- (100,000 in its sample data, tiny_id_info 'test'), and a double buffer:
-- once 20% of the current segment is used (loadingPercent, default 20;
-- SegmentId.init sets loadingId = currentId + step * 20 / 100), the next
-- segment is loaded asynchronously, so it waits ready beside the current
-- one.
local STEP = 100000
return {
  defaults = { batch = STEP, adaptive = 0 },
  policy = function(s)
    -- 20% used is 80% left
    return STEP, STEP * 80 // 100
  end,
}
