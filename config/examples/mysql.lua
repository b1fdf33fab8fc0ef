-- mysql.lua - counters in a MariaDB or MySQL table, one INSERT ... ON
-- DUPLICATE KEY UPDATE value = LAST_INSERT_ID(value + n) per fetch (the
-- value read from the OK packet), shared by every host that uses the same
-- database and prefix. mariadb:// is the same store.
--
--   idprime next --config config/examples/mysql.lua inode -n 5
--
-- The database must exist; the table is created in it. A server that can
-- lose a committed increment (innodb_flush_log_at_trx_commit other than
-- 1, or the binary log without sync_binlog=1) is warned about at open;
-- durability = "require" refuses to open on it instead.
local ms = 0.001

return {
  uri = "mysql://idprime@127.0.0.1:3306/idprime",

  defaults = {
    timeout_ms = 2000,            -- connect, read and write timeout
    durability = "require",       -- mysql only: refuse a lossy server
    table = "idprime_counters",   -- mysql only: the counters' table
    prefix = "idprime:",
    batch = 512,
  },

  counters = {
    inode = { batch = 1024 },
    chunk = { batch = 8192, low_watermark = 50 },
  },

  -- As for PostgreSQL: a fetch is a commit; one fetch per 100 ms of
  -- consumption, within 64..262144, doubled after a fetch over 20 ms.
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
