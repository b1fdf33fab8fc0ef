-- redis-cluster.lua - counters spread over the masters of a Redis Cluster
-- by hash slot; MOVED and ASK are followed and the slot map refreshed,
-- and counters due together are fetched with one pipeline per master.
--
--   idprime next --config config/examples/redis-cluster.lua inode -n 5
--
-- Any node of the cluster is enough to start (more are tried in order if
-- the first is down); the slot map comes from the cluster. A plain
-- redis:// URI on a cluster node is refused at open. A cluster has db 0
-- only. `idprime migrate` to or from a cluster walks every master.
return {
  uri = "redis-cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",

  defaults = {
    timeout_ms = 2000,
    wait_replicas = 0,     -- 1: each batch waits for a replica of its
                           -- master (with cluster replicas)
    prefix = "idprime:",   -- the counter's key, hashed to its slot
    batch = 512,
  },

  counters = {
    inode = { batch = 1024 },
    chunk = { batch = 8192, low_watermark = 50 },
  },
}
