-- redis-sentinel.lua - counters in the Redis master that the sentinels
-- name, followed through a failover (on a connection error or a READONLY
-- reply the sentinels are asked again).
--
--   idprime next --config config/examples/redis-sentinel.lua inode -n 5
--
-- List every sentinel: any one that answers is enough. wait_replicas = 1
-- makes each batch wait until a replica holds it (WAIT), so a failover to
-- that replica never hands an ID out twice; without it, a promoted replica
-- that missed the last increments answers values already served, and the
-- engine refuses them (an error, never a duplicate) until it climbs past.
return {
  uri = "redis-sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster",

  defaults = {
    timeout_ms = 2000,
    wait_replicas = 1,     -- redis: replicas that must hold each batch
    db = 0,                -- redis-sentinel: the database on the master
    prefix = "idprime:",
    batch = 512,
  },

  counters = {
    inode = { batch = 1024 },
    chunk = { batch = 8192, low_watermark = 50 },
  },
}
