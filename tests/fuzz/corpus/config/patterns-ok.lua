-- the patterns a config uses must still work
local text = "batch = 512\nlow_watermark = 25\n  prefix =  fs:  \n"
local d = {}
for line in text:gmatch("[^\n]+") do
  local k, v = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
  d[k] = tonumber(v) or v
end
local host = ("redis://h:6379/0"):gsub("^redis://", ""):match("^([^:/]+)")
return {
  uri = "mem://" .. host .. "?delay_ms=0",
  defaults = { batch = d.batch, low_watermark = d.low_watermark, prefix = d.prefix },
  counters = { inode = { batch = select(2, ("a,b,c"):gsub(",", ",")) + 1 } },
  policy = function(s) return (s.counter:find("^ino")) and s.batch or nil end,
}
