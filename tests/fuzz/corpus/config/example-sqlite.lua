-- sqlite.lua - counters in a SQLite file (WAL), shared by every process
-- on the host that opens the same file.
--
--   idprime next --config config/examples/sqlite.lua inode -n 5
--
-- sqlite://rel/path.db is relative to the current directory,
-- sqlite:///abs/path.db absolute; the folder must exist.
return {
  uri = "sqlite://idprime-example.db",

  defaults = {
    synchronous = "FULL",  -- sqlite only: NORMAL may lose the last commits
                           -- on power loss, and IDs could then repeat
    timeout_ms = 5000,     -- also the busy timeout for the write lock
    batch = 256,
  },

  counters = {
    inode = { batch = 256 },
    chunk = { batch = 4096, low_watermark = 50 },
  },

  -- Each fetch is a durable commit (a few ms with synchronous=FULL): grow
  -- the batch when a fetch took longer than the last batch lasted, shrink
  -- it when a batch lasts over a second, within 32..65536.
  policy = function(s)
    if s.rate <= 0 then
      return nil
    end
    local lasted = s.batch / s.rate
    if s.fetch_seconds > lasted and s.batch < 65536 then
      return s.batch * 2
    elseif lasted > 1 and s.batch > 32 then
      return s.batch // 2
    end
  end,
}
