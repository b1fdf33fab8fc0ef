-- postgresql.lua - counters in a PostgreSQL table (idprime_counters), one
-- INSERT ... ON CONFLICT DO UPDATE ... RETURNING per fetch, shared by
-- every host that uses the same database and prefix.
--
--   idprime next --config config/examples/postgresql.lua inode -n 5
--
-- The database must exist; the table is created in it. The user needs
-- CREATE on the schema the first time, then INSERT/UPDATE/SELECT. A
-- server that can lose a committed increment (fsync off,
-- synchronous_commit off) is warned about at open: IDs could then repeat
-- after its crash.
local ms = 0.001

return {
  uri = "postgresql://idprime@127.0.0.1:5432/idprime",

  defaults = {
    timeout_ms = 2000,            -- connect and statement timeout
    synchronous_commit = "on",    -- postgresql only: never "off" (a crash
                                  -- could lose a batch already served)
    prefix = "idprime:",          -- rows are idprime:inode, idprime:chunk
    batch = 512,
  },

  counters = {
    inode = { batch = 1024 },
    chunk = { batch = 8192, low_watermark = 50 },
  },

  -- Each fetch is a commit (a WAL flush on the server): aim for one fetch
  -- per 100 ms of consumption at the rate the last batch was used, within
  -- 64..262144; a slow fetch (over 20 ms) also doubles the batch.
  policy = function(s)
    if s.rate <= 0 then
      return nil
    end
    local want = math.floor(s.rate * 0.1)
    if s.fetch_seconds > 20 * ms then
      want = math.max(want, s.batch * 2)
    end
    return math.max(64, math.min(want, 262144))
  end,
}
