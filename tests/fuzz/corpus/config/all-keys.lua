#!/usr/bin/env lua5.4
local t = {uri = "mem://x?delay_ms=0", defaults = {}, counters = {}}
for _, k in ipairs({"batch", "low_watermark", "adaptive", "max_batch"}) do
  t.counters["c_" .. k] = {[k] = 1}
end
t.defaults.metaprime = true
t.defaults.timeout_ms = 1.0e3
t.defaults.prefix = ("p"):rep(10)
t.defaults.prime = "inode,chunk"
t.defaults["x.y:z-w"] = false
return t
