/*
 * delayproxy.h - the bench's TCP delay proxy: listens on 127.0.0.1, forwards
 * every connection to 127.0.0.1:TARGET, and holds each chunk of bytes for
 * half the round-trip time in each direction, in order.
 *
 * It exists because Debian packages no such tool and the kernel here has no
 * netem. Only loopback addresses are ever used. Connection setup itself is
 * not delayed, only the data (a store client connects once per run).
 *
 * The proxy is a loop (dp_run) that runs until a file descriptor becomes
 * readable: the standalone idprime-delayproxy runs it on a signalfd, the
 * bench on a thread with an eventfd (proxy_ctl.h).
 */
#ifndef IDPRIME_BENCH_DELAYPROXY_H
#define IDPRIME_BENCH_DELAYPROXY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Connections served at once; more are accepted and closed at once. */
#define DP_MAX_CONNS 256
/* Bytes held per direction of a connection before it stops reading. */
#define DP_MAX_QUEUED (4u << 20)

/* What the loop did, readable from another thread while it runs. */
typedef struct dp_stats {
    _Atomic uint64_t accepted;    /* connections taken on (not over the
                                     limit, a target socket opened) */
    _Atomic uint64_t refused;     /* closed at once: over DP_MAX_CONNS, or
                                     the target did not accept */
    _Atomic uint64_t bytes_up;    /* client -> target, written */
    _Atomic uint64_t bytes_down;  /* target -> client, written */
} dp_stats;

/*
 * Listens on 127.0.0.1:port (0: a free port chosen by the kernel) and
 * stores the port bound in *bound. Returns the listening socket
 * (non-blocking, close-on-exec), or -1 with msg filled.
 */
int dp_listen(int port, int *bound, char *msg, size_t len);

/*
 * Forwards connections accepted on listen_fd to 127.0.0.1:target_port,
 * delaying each chunk by delay_ns in each direction (half the round trip),
 * until stop_fd is readable. Closes every connection it made before
 * returning, but not listen_fd or stop_fd. `stats` may be NULL.
 * Returns 0, or -1 with msg filled when the loop itself failed (epoll,
 * timerfd); a failed connection only closes that connection.
 */
int dp_run(int listen_fd, int target_port, uint64_t delay_ns, int stop_fd,
           dp_stats *stats, char *msg, size_t len);

#endif
