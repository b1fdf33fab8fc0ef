-- mem.lua - the in-process store: zero-latency baselines and tests, here
-- with a simulated 1 ms round trip so batching and prefetch show.
--
--   idprime next --config config/examples/mem.lua inode -n 5
--   idprime next --config config/examples/mem.lua 'mem://?delay_ms=0' inode
--     (a URI given beside the config replaces its uri; its parameters win)
--
-- A config script runs in a sandbox (no io, os, require, load ...): it
-- computes and returns this table, nothing more.
return {
  uri = "mem://example",

  -- every engine parameter, and the store's own (mem: delay_ms)
  defaults = {
    batch = 256,          -- IDs per round trip for counters without their own
    low_watermark = 25,   -- prefetch when 25% of the batch is left
    timeout_ms = 2000,
    delay_ms = 1,         -- mem only: simulated round trip
  },

  -- per counter: batch and low_watermark
  counters = {
    inode = { batch = 256 },
    chunk = { batch = 2048, low_watermark = 50 },
  },

  -- Called once per fetch (never per ID). Double the batch while callers
  -- had to wait for IDs, up to 65536; nil keeps the batch as it is.
  policy = function(s)
    if s.waits > 0 and s.batch < 65536 then
      return s.batch * 2
    end
  end,
}
