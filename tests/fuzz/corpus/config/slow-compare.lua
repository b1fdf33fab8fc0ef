-- each comparison is one instruction doing a memcmp of 2 MB
local a = ("x"):rep(2e6)
local b = ("x"):rep(2e6 - 1) .. "x"
local n = 0
while a == b do n = n + 1 end
return {}
