local ok, e = pcall(function() return io.open("/etc/passwd") end)
print(ok, e)
print(pcall(function() return require("os") end))
print(pcall(function() return string.dump(print) end))
print(pcall(getmetatable, ""), getmetatable(_G))
print(pcall(setmetatable, {}, {__gc = function() while true do end end}))
warn("@on") warn("a ", "b") warn("c", "d", "e")
return { uri = "redis://h/0", policy = function(s) return s.batch * 2 end }
