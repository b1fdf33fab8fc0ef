-- with a byte order mark
return { defaults = { batch = "512" } }
