/*
 * proxy_ctl.h - a delay proxy on a thread of the bench process, started
 * before a run and stopped after it.
 */
#ifndef IDPRIME_BENCH_PROXY_CTL_H
#define IDPRIME_BENCH_PROXY_CTL_H

#include <stddef.h>

#include "delayproxy.h"

typedef struct bench_proxy bench_proxy;

/*
 * Starts a proxy on a free port of 127.0.0.1 forwarding to
 * 127.0.0.1:target_port with rtt_ms of round trip (rtt_ms/2 each way).
 * Returns it, or NULL with msg filled.
 */
bench_proxy *bench_proxy_start(int target_port, unsigned rtt_ms, char *msg,
                               size_t len);

/* The port it listens on. */
int bench_proxy_port(const bench_proxy *p);

/* What it has done so far (readable while it runs). */
const dp_stats *bench_proxy_stats(const bench_proxy *p);

/* Stops the thread, closes every connection and frees it. NULL: no-op. */
void bench_proxy_stop(bench_proxy *p);

#endif
