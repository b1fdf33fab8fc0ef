-- memcached.lua - counters in memcached (64-bit incr), spread over a server
-- list by consistent hashing: every client must list the same servers,
-- spelled the same way.
--
--   idprime next --config config/examples/memcached.lua inode -n 5
--
-- memcached keeps counters in memory only: a restart, flush_all or an
-- eviction loses them and the server answers from 0 again. The engine
-- refuses such answers (no duplicate is ever served); raise the counter
-- with `idprime migrate` from a durable store to continue. Start the
-- servers with -M so they never evict; the plugin warns otherwise.
return {
  uri = "memcached://127.0.0.1:11211",

  defaults = {
    timeout_ms = 1000,
    prefix = "idprime:",
    batch = 1024,
    low_watermark = 30,
  },

  counters = {
    inode = { batch = 1024 },
    chunk = { batch = 8192 },
  },

  -- A fixed batch per counter: no policy.
}
