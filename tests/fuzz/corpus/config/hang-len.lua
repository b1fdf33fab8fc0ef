-- a __len that lies: table.insert/remove/sort would loop to 1e15 in C
local t = setmetatable({}, {__len = function() return 1e15 end})
print(pcall(table.remove, t, 1))
print(pcall(table.sort, t))
table.insert(t, 1, 0)
return {}
