-- an empty piece repeated 2^63-1 times: lstrlib loops copying nothing
local s = string.rep("", math.maxinteger)
return { defaults = { prefix = s .. string.rep("", 3, "") } }
