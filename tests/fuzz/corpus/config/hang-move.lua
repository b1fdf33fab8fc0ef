-- moving nils allocates nothing, so only the instruction cap can stop it
table.move({}, 1, math.maxinteger // 2, 1)
return {}
