return {
  defaults = { inode_batch = 512 },
  counters = { inode = { batch = 256 } },
}
