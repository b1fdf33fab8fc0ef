/*
 * test_caches.c - the caller-owned idp_cache on the mem store: IDs that
 * increase and that no one else gets (caches beside idp_next/idp_incr on
 * other threads), fill sizes, accounting (what a cache takes counts as
 * served), revocation by idp_close, and by fork (a child's cache never
 * serves the parent's IDs; a mem namespace goes on in the child).
 *
 * Every ID a test collects is checked for duplicates. Children report
 * through pipes and are reaped with a deadline.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "idprime/idprime.h"
#include "testutil.h"

/* ---- idp_cache ------------------------------------------------------- */

typedef struct cache_user {
    idp_counter *ctr;
    uint64_t fill;     /* 0: this thread uses idp_next/idp_incr */
    size_t want;
    uint64_t *ids;
    size_t got;
    uint64_t taken;    /* IDs taken: the caches' whole refills */
    int rc;
    char msg[256];
} cache_user;

static void *use_cache(void *arg)
{
    cache_user *u = arg;
    idp_error e = {0, ""};
    idp_cache k;
    if (u->fill != 0 &&
        (u->rc = idp_cache_init(&k, sizeof k, u->ctr, u->fill, &e)) != IDP_OK) {
        snprintf(u->msg, sizeof u->msg, "init: %s", e.msg);
        return NULL;
    }
    for (u->got = 0; u->got < u->want; u->got++) {
        uint64_t id = 0;
        if (u->fill == 0) {
            u->rc = u->got % 4 == 3 ? idp_incr(u->ctr, 1, &id, &e)
                                    : idp_next(u->ctr, &id, &e);
            u->taken += u->rc == IDP_OK;
        } else {
            if (u->got == u->want / 2)
                idp_cache_release(&k); /* its rest: a gap */
            int empty = k.next >= k.end;
            u->rc = idp_cache_next(&k, &id, &e);
            if (u->rc == IDP_OK && empty)
                u->taken += k.end - id; /* a refill: all it took */
            if (u->rc == IDP_OK && !empty && id != k.next - 1)
                u->rc = -1;
        }
        if (u->rc != IDP_OK) {
            snprintf(u->msg, sizeof u->msg, "%s", u->rc == -1 ? "served "
                     "off the cache's own range" : e.msg);
            return NULL;
        }
        u->ids[u->got] = id;
    }
    if (u->fill != 0)
        idp_cache_release(&k);
    return NULL;
}

START_TEST(test_a_cache_hands_out_increasing_ids_no_one_else_gets)
{
    idp_client *c = tu_open("mem://cacheuniq?batch=500&low_watermark=25", NULL);
    idp_counter *k = tu_counter(c, "k");
    const uint64_t fills[8] = {1, 7, 0, 1000, 0, 256, 0, 0};
    /* caches: fills 1, 7, 1000, 256; threads on idp_next/incr: 4 */
    const size_t per = 20000;
    cache_user u[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        u[i] = (cache_user){.ctr = k, .fill = fills[i], .want = per,
                            .ids = malloc(per * sizeof(uint64_t))};
        ck_assert_ptr_nonnull(u[i].ids);
        ck_assert_int_eq(pthread_create(&th[i], NULL, use_cache, &u[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    uint64_t *all = malloc(8 * per * sizeof *all);
    ck_assert_ptr_nonnull(all);
    size_t n = 0;
    uint64_t taken = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(u[i].rc == IDP_OK, "thread %d (fill %" PRIu64 "): %s",
                      i, u[i].fill, u[i].msg);
        for (size_t j = 1; j < u[i].got; j++)
            ck_assert_msg(u[i].ids[j] > u[i].ids[j - 1], "thread %d (fill %"
                          PRIu64 "): %" PRIu64 " after %" PRIu64, i,
                          u[i].fill, u[i].ids[j], u[i].ids[j - 1]);
        memcpy(all + n, u[i].ids, u[i].got * sizeof *all);
        n += u[i].got;
        taken += u[i].taken;
        free(u[i].ids);
    }
    tu_assert_distinct(all, n);
    /* what the caches took counts as served, whether handed out or not */
    idp_counter_stats s = tu_settle(k);
    ck_assert_uint_eq(s.ids_served, taken);
    free(all);
    idp_close(c);
}
END_TEST

START_TEST(test_cache_fill_sizes)
{
    idp_client *c = tu_open("mem://fills?batch=65536&adaptive=0&low_watermark=0",
                            NULL);
    idp_counter *a = tu_counter(c, "a"), *b = tu_counter(c, "b");
    idp_error e = {0, ""};
    idp_cache k1, kd, kmax;
    uint64_t id = 0, id2 = 0;
    /* fill 1: one ID per refill */
    ck_assert_int_eq(idp_cache_init(&k1, sizeof k1, a, 1, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&k1, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    ck_assert_uint_eq(k1.end - k1.next, 0);
    ck_assert_int_eq(idp_cache_next(&k1, &id2, &e), IDP_OK);
    ck_assert_uint_eq(id2, 2);
    ck_assert_uint_eq(k1.end - k1.next, 0);
    /* 0: the default, 256 */
    ck_assert_int_eq(idp_cache_init(&kd, sizeof kd, a, 0, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&kd, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 3);
    ck_assert_uint_eq(kd.end - id, 256);
    /* the largest: 65536 from a fresh batch of 65536 */
    ck_assert_int_eq(idp_cache_init(&kmax, sizeof kmax, b, IDP_CACHE_MAX_FILL,
                                     &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&kmax, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    ck_assert_uint_eq(kmax.end - id, 65536);
    for (uint64_t i = 2; i <= 65536; i++) {
        ck_assert_int_eq(idp_cache_next(&kmax, &id, &e), IDP_OK);
        if (id != i)
            ck_assert_uint_eq(id, i);
    }
    idp_counter_stats s = tu_stats(b);
    ck_assert_uint_eq(s.prime_calls, 1); /* all of it from one fetch */
    /* refused: a fill over the largest, a size too small */
    idp_cache bad;
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_init(&bad, sizeof bad, a, IDP_CACHE_MAX_FILL + 1,
                                    &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "65537"));
    ck_assert_ptr_nonnull(strstr(e.msg, "1..65536"));
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_init(&bad, sizeof bad - 1, a, 0, &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "size"));
    ck_assert_int_eq(idp_cache_init(&bad, 0, a, 0, &e), IDP_EINVAL);
    idp_close(c);
}
END_TEST

START_TEST(test_a_cache_is_revoked_by_idp_close)
{
    idp_client *c = tu_open("mem://revoke?batch=1000", NULL);
    idp_counter *k = tu_counter(c, "r");
    idp_error e = {0, ""};
    idp_cache kc;
    uint64_t id = 0;
    ck_assert_int_eq(idp_cache_init(&kc, sizeof kc, k, 100, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    ck_assert_uint_gt(kc.end, kc.next); /* it still holds IDs */
    idp_close(c);
    /* the cache's memory is the caller's, the client is gone: revoked */
    uint64_t after = 12345;
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_next(&kc, &after, &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "revoked"));
    ck_assert_uint_eq(after, 12345); /* untouched */
    /* a new client (which may reuse what the old one had) does not bring
     * the old cache back */
    idp_client *c2 = tu_open("mem://revoke2?batch=1000", NULL);
    idp_counter *k2 = tu_counter(c2, "r");
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_next(&kc, &after, &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "revoked"));
    ck_assert_uint_eq(after, 12345);
    idp_cache k2c;
    ck_assert_int_eq(idp_cache_init(&k2c, sizeof k2c, k2, 10, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&k2c, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    idp_close(c2);
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(idp_cache_next(&k2c, &after, &e), IDP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "revoked"));
}
END_TEST

START_TEST(test_ids_a_cache_takes_count_as_served)
{
    idp_client *c = tu_open("mem://cserved?batch=4096&adaptive=0", NULL);
    idp_counter *k = tu_counter(c, "s");
    idp_error e = {0, ""};
    idp_cache kc;
    uint64_t id = 0;
    ck_assert_int_eq(idp_cache_init(&kc, sizeof kc, k, 100, &e), IDP_OK);
    ck_assert_uint_eq(tu_stats(k).ids_served, 0);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(tu_stats(k).ids_served, 100); /* the whole fill */
    for (int i = 0; i < 99; i++)
        ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 100);
    ck_assert_uint_eq(tu_stats(k).ids_served, 100);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK); /* a refill */
    ck_assert_uint_eq(id, 101);
    ck_assert_uint_eq(tu_stats(k).ids_served, 200);
    idp_cache_release(&kc); /* 99 unused: a gap, already counted */
    ck_assert_uint_eq(tu_stats(k).ids_served, 200);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 201); /* after the released rest, increasing */
    ck_assert_uint_eq(tu_stats(k).ids_served, 300);
    uint64_t v = tu_next(k); /* this thread's own run: counts per ID */
    ck_assert_uint_gt(v, 300);
    idp_counter_stats s = tu_stats(k);
    ck_assert_uint_eq(s.ids_served, 301);
    ck_assert_uint_eq(s.ids_served + s.unused_ids, s.high);
    idp_close(c);
}
END_TEST

/* What a child reports about its cache after fork. */
typedef struct child_report {
    int rc, rc_next;
    uint64_t id, next, end, gen, id_next;
    char msg[256];
} child_report;

/* Reads a whole report from fd within `ms`; 0 on success. */
static int read_report(int fd, child_report *r, int ms)
{
    size_t got = 0;
    long long deadline = tu_now_ms() + ms;
    while (got < sizeof *r) {
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        ssize_t k = read(fd, (char *)r + got, sizeof *r - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

/* Waits for pid within `ms`, killing it after; returns its status, or -1
 * when it had to be killed. */
static int reap(pid_t pid, int ms)
{
    long long deadline = tu_now_ms() + ms;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return st;
        if (w < 0 && errno != EINTR)
            return -1;
        if (tu_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        tu_sleep_ms(2); /* polling a child's state, not a timing guess */
    }
}

/* Runs `child` in a forked child, which reports through a pipe and
 * _exits; the parent reads the report and reaps the child, both bounded in
 * time. Fails the test when the child does not report or exit cleanly. */
static void in_child(void (*child)(void *ud, child_report *r), void *ud,
                     child_report *out)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_report r;
        memset(&r, 0, sizeof r);
        child(ud, &r);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    int got = read_report(fds[0], out, 30000);
    close(fds[0]);
    int st = reap(pid, 30000);
    char how[64];
    if (st < 0)
        snprintf(how, sizeof how, "killed after 30 s");
    else if (WIFSIGNALED(st))
        snprintf(how, sizeof how, "ended by signal %d", WTERMSIG(st));
    else
        snprintf(how, sizeof how, "exited with %d%s", WEXITSTATUS(st),
                 WEXITSTATUS(st) == 66 ? " (a sanitizer's report: see its "
                 "output above)" : "");
    ck_assert_msg(got == 0, "no report from the child: it %s", how);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "the child %s", how);
}

typedef struct fork_cache {
    idp_client *c;
    idp_counter *k;
    idp_cache *kc;
} fork_cache;

static void child_cache(void *ud, child_report *r)
{
    fork_cache *f = ud;
    idp_error ce = {0, ""};
    r->rc = idp_cache_next(f->kc, &r->id, &ce);
    r->next = f->kc->next;
    r->end = f->kc->end;
    r->gen = f->kc->gen_;
    if (r->rc != IDP_OK)
        snprintf(r->msg, sizeof r->msg, "cache: %s", ce.msg);
    r->rc_next = idp_next(f->k, &r->id_next, &ce);
    if (r->rc_next != IDP_OK && r->rc == IDP_OK)
        snprintf(r->msg, sizeof r->msg, "next: %s", ce.msg);
    idp_close(f->c);
}

START_TEST(test_a_cache_in_a_child_after_fork_never_serves_the_parents_ids)
{
    /* no watermark: no worker thread, the parent is single-threaded at
     * fork. A second client keeps the mem namespace open in the child (it
     * is never used there), so that the child's own fetch continues the
     * parent's values. */
    const char *uri = "mem://forkcache?batch=1024&adaptive=0&low_watermark=0";
    idp_client *c = tu_open(uri, NULL), *keep = tu_open(uri, NULL);
    idp_counter *k = tu_counter(c, "f");
    idp_error e = {0, ""};
    idp_cache kc;
    uint64_t id = 0;
    ck_assert_int_eq(idp_cache_init(&kc, sizeof kc, k, 100, &e), IDP_OK);
    ck_assert_int_eq(idp_cache_next(&kc, &id, &e), IDP_OK);
    ck_assert_uint_eq(id, 1);
    uint64_t mine = tu_next(k); /* and a run of this thread */
    const uint64_t next0 = kc.next, end0 = kc.end, gen0 = kc.gen_;
    const uint64_t high0 = tu_stats(k).high;
    ck_assert_uint_lt(next0, end0); /* the cache holds IDs at fork */
    fork_cache f = {c, k, &kc};
    child_report r;
    in_child(child_cache, &f, &r);
    ck_assert_msg(r.rc == IDP_OK && r.rc_next == IDP_OK, "child: %s", r.msg);
    /* the child refilled under a new generation, above what the parent
     * held: none of [next0, end0) nor the parent's run */
    ck_assert_uint_ne(r.gen, gen0);
    ck_assert_msg(r.id >= end0 || r.id < next0, "child's cache served %" PRIu64
                  ", inside the parent's cache [%" PRIu64 ", %" PRIu64 ")",
                  r.id, next0, end0);
    ck_assert_uint_gt(r.id, high0);
    ck_assert_uint_eq(r.next, r.id + 1);
    ck_assert_uint_gt(r.id_next, high0);
    ck_assert_uint_ne(r.id_next, mine + 1);
    /* the parent's cache carries on with what it held */
    uint64_t pid_id = 0;
    ck_assert_int_eq(idp_cache_next(&kc, &pid_id, &e), IDP_OK);
    ck_assert_uint_eq(pid_id, next0);
    ck_assert_uint_eq(kc.gen_, gen0);
    idp_close(keep);
    idp_close(c);
}
END_TEST

typedef struct fork_ns {
    idp_client *c;
    idp_counter *k;
} fork_ns;

static void child_ns(void *ud, child_report *r)
{
    fork_ns *f = ud;
    idp_error ce = {0, ""};
    r->rc_next = idp_next(f->k, &r->id_next, &ce);
    if (r->rc_next != IDP_OK)
        snprintf(r->msg, sizeof r->msg, "next: %s", ce.msg);
    int exists = 0;
    r->rc = idp_get(f->c, "raised", &r->id, &exists, &ce);
    if (r->rc != IDP_OK && r->rc_next == IDP_OK)
        snprintf(r->msg, sizeof r->msg, "get: %s", ce.msg);
    idp_close(f->c);
}

START_TEST(test_a_client_alone_on_a_mem_namespace_works_in_a_child_after_fork)
{
    /* mem: "a child made by fork() has its own copy of the parent's
     * namespace". The one client of the namespace is used in the child: its
     * fetch continues above the parent's values, and the values the parent
     * raised are there. */
    idp_client *c = tu_open("mem://forkalone?batch=100&adaptive=0&low_watermark=0",
                            NULL);
    idp_counter *k = tu_counter(c, "a");
    ck_assert_uint_eq(tu_next(k), 1);
    idp_error e = {0, ""};
    uint64_t v = 0;
    ck_assert_int_eq(idp_raise(c, "raised", 1000, &v, &e), IDP_OK);
    ck_assert_uint_eq(v, 1000);
    fork_ns f = {c, k};
    child_report r;
    in_child(child_ns, &f, &r);
    ck_assert_msg(r.rc_next == IDP_OK, "child: %s", r.msg);
    ck_assert_uint_gt(r.id_next, 100);
    ck_assert_msg(r.rc == IDP_OK, "child: %s", r.msg);
    ck_assert_uint_eq(r.id, 1000); /* the parent's copy of 'raised' */
    idp_close(c);
}
END_TEST

int main(void)
{
    const TTest *caches[] = {
        test_a_cache_hands_out_increasing_ids_no_one_else_gets,
        test_cache_fill_sizes, test_a_cache_is_revoked_by_idp_close,
        test_ids_a_cache_takes_count_as_served,
        test_a_cache_in_a_child_after_fork_never_serves_the_parents_ids,
        test_a_client_alone_on_a_mem_namespace_works_in_a_child_after_fork,
        NULL};
    const tu_case cases[] = {
        {.name = "caches", .tests = caches},
        {.name = NULL}};
    return tu_run(tu_suite("caches", 120, cases));
}
