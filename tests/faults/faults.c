/*
 * faults.c - the helpers of faults.h.
 *
 * The taker threads never assert (Check's ck_assert belongs to the test's
 * own thread): they record, and fa_run_check judges what they recorded.
 */
#include "faults.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "testutil.h"

unsigned fa_seed(void)
{
    static unsigned seed;
    static int chosen;
    if (!chosen) {
        const char *env = getenv("IDPRIME_FAULT_SEED");
        if (env != NULL && env[0] != '\0') {
            seed = (unsigned)strtoul(env, NULL, 10);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (unsigned)(ts.tv_nsec ^ ts.tv_sec ^ getpid());
        }
        chosen = 1;
        fprintf(stderr, "faults: seed %u (IDPRIME_FAULT_SEED=%u replays it)\n",
                seed, seed);
    }
    return seed;
}

/* ---- Raw servers ------------------------------------------------------ */

long fa_raw(int port, const char *cmd, size_t len, const char *end, char *out,
            size_t outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t got = 0, elen = strlen(end);
    out[0] = '\0';
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        goto fail;
    for (size_t sent = 0; sent < len;) {
        ssize_t w = send(fd, cmd + sent, len - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        sent += (size_t)w;
    }
    while (got + 1 < outlen && (got < elen ||
                                memcmp(out + got - elen, end, elen) != 0)) {
        ssize_t r = recv(fd, out + got, outlen - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        out[got] = '\0';
    }
    close(fd);
    return got >= elen && memcmp(out + got - elen, end, elen) == 0 ? (long)got
                                                                   : -1;
fail:
    close(fd);
    return -1;
}

/* ---- Clients running on threads ------------------------------------------ */

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 4096;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void *taker_main(void *arg)
{
    fa_taker *t = arg;
    fa_run *r = t->run;
    char name[256];
    snprintf(name, sizeof name, "counter '%s'", r->counter);
    uint64_t last = 0;
    unsigned streak = 0;
    while (!atomic_load(&r->stop)) {
        uint64_t id = 0;
        idp_error err = {0, ""};
        long long t0 = tu_now_ms();
        int rc = idp_next(r->ctr, &id, &err);
        long long dt = tu_now_ms() - t0;
        if (rc == IDP_OK) {
            if (id <= last && !t->bad_order) {
                t->bad_order = 1;
                snprintf(t->why, sizeof t->why, "thread %d: ID %" PRIu64
                         " after %" PRIu64 ": not increasing", t->index, id,
                         last);
            }
            last = id;
            if (grow((void **)&t->ids, &t->cap, t->n + 1, sizeof *t->ids)) {
                t->oom = 1;
                break;
            }
            t->ids[t->n++] = id;
            atomic_store(&t->served, t->n);
            atomic_store(&t->last_ok_ms, t0);
            if (++streak % 16 == 0)
                nap_us(200);
            continue;
        }
        if (grow((void **)&t->errs, &t->errcap, t->nerr + 1, sizeof *t->errs)) {
            t->oom = 1;
            break;
        }
        t->errs[t->nerr++] = (fa_err){t0, dt, rc};
        if (rc >= 0 && rc <= IDP_EUNSUPPORTED && t->sample[rc][0] == '\0')
            snprintf(t->sample[rc], sizeof t->sample[rc], "%s", err.msg);
        int named = err.msg[0] != '\0' && strstr(err.msg, name) != NULL &&
                    (rc != IDP_ESTORE || strstr(err.msg, r->store) != NULL);
        if (!named && !t->bad_msg) {
            t->bad_msg = 1;
            snprintf(t->why, sizeof t->why, "thread %d: error %d with message "
                     "'%s' (must name %s%s%s)", t->index, rc, err.msg, name,
                     rc == IDP_ESTORE ? " and " : "",
                     rc == IDP_ESTORE ? r->store : "");
        }
        if (id != 0 && !t->bad_order) {
            t->bad_order = 1;
            snprintf(t->why, sizeof t->why, "thread %d: a failed call set the "
                     "ID to %" PRIu64, t->index, id);
        }
        nap_us(1000);
    }
    return NULL;
}

void fa_run_start(fa_run *r, idp_counter *ctr, const char *counter,
                  const char *store, int threads)
{
    ck_assert_int_le(threads, FA_MAX_THREADS);
    memset(r, 0, sizeof *r);
    r->ctr = ctr;
    r->counter = counter;
    r->store = store;
    r->threads = threads;
    atomic_init(&r->stop, 0);
    for (int i = 0; i < threads; i++) {
        r->t[i].run = r;
        r->t[i].index = i;
        ck_assert_int_eq(pthread_create(&r->t[i].th, NULL, taker_main,
                                        &r->t[i]), 0);
    }
}

void fa_run_stop(fa_run *r)
{
    atomic_store(&r->stop, 1);
    for (int i = 0; i < r->threads; i++)
        pthread_join(r->t[i].th, NULL);
}

long long fa_run_last_ok_min(fa_run *r)
{
    long long m = -1;
    for (int i = 0; i < r->threads; i++) {
        long long v = atomic_load(&r->t[i].last_ok_ms);
        if (m < 0 || v < m)
            m = v;
    }
    return m;
}

int fa_run_wait_recovered(fa_run *r, long long since_ms, uint64_t prime_calls0,
                          uint64_t fetches, long long timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        idp_counter_stats st = {.size = sizeof st};
        idp_counter_stats_get(r->ctr, &st);
        if (fa_run_last_ok_min(r) >= since_ms &&
            st.prime_calls >= prime_calls0 + fetches)
            return 1;
        if (tu_now_ms() >= deadline)
            return 0;
        tu_sleep_ms(10);
    }
}

size_t fa_run_check(fa_run *r, long long limit_ms)
{
    size_t errors = 0;
    for (int i = 0; i < r->threads; i++) {
        fa_taker *t = &r->t[i];
        ck_assert_msg(!t->oom, "thread %d ran out of memory recording", i);
        ck_assert_msg(!t->bad_order && !t->bad_msg, "%s", t->why);
        for (size_t k = 0; k < t->nerr; k++) {
            const fa_err *e = &t->errs[k];
            ck_assert_msg(e->code == IDP_ESTORE || e->code == IDP_ETIMEOUT ||
                          e->code == IDP_EREGRESS,
                          "thread %d: a call failed with code %d (%s): "
                          "expected a store error, a timeout or a refused "
                          "regression", i, e->code,
                          e->code >= 0 && e->code <= IDP_EUNSUPPORTED
                              ? t->sample[e->code] : "?");
            ck_assert_msg(e->dt_ms <= limit_ms, "thread %d: a call failing "
                          "with %d (%s) took %lld ms, over the bound of %lld "
                          "ms", i, e->code, t->sample[e->code], e->dt_ms,
                          limit_ms);
        }
        errors += t->nerr;
    }
    return errors;
}

size_t fa_run_errors(const fa_run *r, int code, long long from_ms,
                     long long to_ms)
{
    size_t n = 0;
    for (int i = 0; i < r->threads; i++)
        for (size_t k = 0; k < r->t[i].nerr; k++) {
            const fa_err *e = &r->t[i].errs[k];
            if ((code < 0 || e->code == code) && e->start_ms >= from_ms &&
                e->start_ms < to_ms)
                n++;
        }
    return n;
}

long long fa_run_max_err_ms(const fa_run *r)
{
    long long m = 0;
    for (int i = 0; i < r->threads; i++)
        for (size_t k = 0; k < r->t[i].nerr; k++)
            if (r->t[i].errs[k].dt_ms > m)
                m = r->t[i].errs[k].dt_ms;
    return m;
}

uint64_t *fa_run_ids(const fa_run *r, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < r->threads; i++)
        total += r->t[i].n;
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t at = 0;
    for (int i = 0; i < r->threads; i++) {
        if (r->t[i].n > 0)
            memcpy(all + at, r->t[i].ids, r->t[i].n * sizeof *all);
        at += r->t[i].n;
    }
    *n = total;
    return all;
}

uint64_t fa_run_max_id(const fa_run *r)
{
    uint64_t m = 0;
    for (int i = 0; i < r->threads; i++)
        if (r->t[i].n > 0 && r->t[i].ids[r->t[i].n - 1] > m)
            m = r->t[i].ids[r->t[i].n - 1];   /* each thread's increase */
    return m;
}

void fa_run_free(fa_run *r)
{
    for (int i = 0; i < r->threads; i++) {
        free(r->t[i].ids);
        free(r->t[i].errs);
        r->t[i].ids = NULL;
        r->t[i].errs = NULL;
    }
}

void fa_run_for(unsigned ms)
{
    tu_sleep_ms(ms);
}
