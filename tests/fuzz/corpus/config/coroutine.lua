local co = coroutine.wrap(function()
  for i = 1, 10 do coroutine.yield(i) end
  while true do coroutine.yield(0) end
end)
local sum = 0
for _ = 1, 20 do sum = sum + co() end
return {
  defaults = {batch = sum, low_watermark = 10},
  policy = function(s)
    local c = coroutine.wrap(function() while true do end end)
    return c()
  end,
}
