local s = ("a"):rep(200)
local n = select(2, s:gsub("a", "b"))
local parts = {}
for w in ("inode,chunk,,x"):gmatch("[^,]+") do parts[#parts + 1] = w end
return {
  uri = string.format("mem://%s?delay_ms=%d", "h", n % 3),
  defaults = { prime = table.concat(parts, ",", 1, 2), prefix = utf8.char(228, 8364) },
}
