local s = ("a"):rep(3000)
local ok = pcall(string.match, s, ("a-"):rep(8) .. "b")
for w in s:gmatch("(a-)a-a-b") do print(w) end
return {}
