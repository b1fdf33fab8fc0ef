return {
  uri = "sqlite://ids.db",
  policy = function(s)
    if s.counter == "inode" then return 1.5 end
    if s.counter == "chunk" then return "big" end
    if s.waits > 0 then error({}) end
    return -1
  end,
}
