#!/usr/bin/python3
"""py_client.py - Debian's python3-redis (redis-py) against `idprime serve`,
run by test_serve_clients: a client library no one here wrote, as a
Python program would use it.

    py_client.py PORT

Checks, exiting 1 with the reason on a failure:
- plain calls: PING, INCR, INCRBY, GET (the store's value, not below an
  ID handed out), a missing key's None, SET's error in Redis's form;
- pipelines (transaction=False) of INCR, INCRBY, GET and ECHO: every
  reply in its request's place, one connection's INCRs increasing;
- a ConnectionPool of 8 connections shared by 8 threads, 500 INCRs each:
  every reply distinct;
- RESP3 (protocol=3) when this redis-py has it (5.0 and later); 4.x
  speaks RESP2 only, and says so on a "note:" line.

Prints every ID it was handed as "id KEY VALUE" lines (the test checks
them for duplicates again), then "ok".
"""
import inspect
import sys
import threading

import redis

HOST = "127.0.0.1"


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def main():
    port = int(sys.argv[1])
    ids = []  # (key, id)

    r = redis.Redis(host=HOST, port=port, socket_timeout=10)
    check(r.ping() is True, "PING")
    a = r.incr("py")
    b = r.incr("py")
    check(a >= 1 and b > a, "INCR py gave %r then %r" % (a, b))
    c = r.incrby("py", 10)
    check(c >= b + 10, "INCRBY py 10 gave %r after %r" % (c, b))
    ids += [("py", a), ("py", b)] + [("py", v) for v in range(c - 9, c + 1)]
    g = r.get("py")
    check(g is not None and int(g) >= c, "GET py gave %r, below %r" % (g, c))
    check(r.get("py-never") is None, "GET of an unused counter is not None")
    try:
        r.set("k", "v")
        fail("SET answered")
    except redis.exceptions.ResponseError as e:
        check(str(e).startswith("unknown command 'SET'"), "SET: %s" % e)

    # pipelines: replies in request order
    p = r.pipeline(transaction=False)
    for _ in range(50):
        p.incr("pipe")
        p.incrby("pipe", 3)
        p.get("pipe")
        p.echo("x")
    res = p.execute()
    check(len(res) == 200, "pipeline: %d replies for 200" % len(res))
    last = 0
    for i in range(0, 200, 4):
        one, three, got, echo = res[i:i + 4]
        check(isinstance(one, int) and one > last,
              "pipeline INCR %d: %r after %r" % (i, one, last))
        check(isinstance(three, int), "pipeline INCRBY %d: %r" % (i, three))
        check(int(got) >= max(one, three), "pipeline GET %d: %r" % (i, got))
        check(echo == b"x", "pipeline ECHO %d: %r" % (i, echo))
        ids.append(("pipe", one))
        ids += [("pipe", v) for v in range(three - 2, three + 1)]
        last = one

    # a pool of 8 connections, 8 threads
    pool = redis.ConnectionPool(host=HOST, port=port, max_connections=8,
                                socket_timeout=10)
    got = [[] for _ in range(8)]
    errors = []

    def worker(t):
        c = redis.Redis(connection_pool=pool)
        try:
            for _ in range(500):
                got[t].append(c.incr("pool"))
        except Exception as e:  # reported by the main thread
            errors.append("thread %d: %r" % (t, e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "; ".join(errors))
    pool_ids = [v for g in got for v in g]
    check(len(pool_ids) == 4000, "pool: %d replies" % len(pool_ids))
    check(len(set(pool_ids)) == 4000,
          "pool: %d duplicate INCR replies" % (4000 - len(set(pool_ids))))
    ids += [("pool", v) for v in pool_ids]

    # RESP3
    if "protocol" in inspect.signature(redis.Redis.__init__).parameters:
        r3 = redis.Redis(host=HOST, port=port, protocol=3, socket_timeout=10)
        v1, v2 = r3.incr("resp3"), r3.incr("resp3")
        check(v2 > v1 >= 1, "RESP3 INCR: %r then %r" % (v1, v2))
        check(r3.get("resp3-never") is None, "RESP3 null")
        ids += [("resp3", v1), ("resp3", v2)]
    else:
        print("note: redis-py %s has no protocol=3 (RESP3 from 5.0 on)"
              % redis.__version__)

    for key, v in ids:
        print("id %s %d" % (key, v))
    print("ok")


if __name__ == "__main__":
    main()
