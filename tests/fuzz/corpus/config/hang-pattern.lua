-- a backtracking pattern: one string.find call, no VM instructions
local s = ("a"):rep(100000)
return { uri = tostring(s:find(("a*"):rep(20) .. "b")) }
