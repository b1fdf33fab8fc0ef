return { defaults = { batch = 512, }
  counters = nil
