return {
  url = "redis://h",
  defaults = { batch = 0, low_watermark = 1.5, ["bad key"] = 1 },
  counters = { inode = { btach = 5 }, [1] = {} },
}
