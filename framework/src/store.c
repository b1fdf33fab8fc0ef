/*
 * store.c - the host side of the plugin ABI: the idp_host struct, parameter
 * lookup, logging, and the wrappers that call plugin methods only where the
 * table's size covers them, falling back otherwise.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define TAB(s) ((s)->lib->tab)

static const char *host_param_str(const idp_host *h, const char *key)
{
    const store *s = h->host_data;
    return options_plugin_value(s->cfg, s->lib->params, key);
}

static int64_t host_param_int(const idp_host *h, const char *key)
{
    const char *v = host_param_str(h, key);
    return v != NULL ? strtoll(v, NULL, 10) : 0;
}

/*
 * Store calls in progress, process-wide, so that fork() can wait for them:
 * a child then never inherits a connection in the middle of a call (a
 * request half sent, a transaction open). The fork handler sets `forking`
 * (new calls wait) and waits until none runs, holding calls_mu across the
 * fork, which both sides then release. (Not a rwlock: a writer's unlock in
 * the child would be taken for a reader's, the child's thread id being new.)
 */
static pthread_mutex_t calls_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t calls_cv = PTHREAD_COND_INITIALIZER;
static unsigned long ncalls;
static int forking;

/* Calls this thread is inside (a list callback may call the client): only
 * the outermost counts, so a fork pending meanwhile cannot wait on it
 * while it waits on the fork. */
static __thread unsigned t_calls;

static void calls_enter(void)
{
    if (t_calls++ > 0)
        return;
    pthread_mutex_lock(&calls_mu);
    while (forking)
        pthread_cond_wait(&calls_cv, &calls_mu);
    ncalls++;
    pthread_mutex_unlock(&calls_mu);
}

static void calls_leave(void)
{
    if (--t_calls > 0)
        return;
    pthread_mutex_lock(&calls_mu);
    if (--ncalls == 0 && forking)
        pthread_cond_broadcast(&calls_cv);
    pthread_mutex_unlock(&calls_mu);
}

void store_fork_prepare(void)
{
    pthread_mutex_lock(&calls_mu);
    forking = 1;
    while (ncalls > 0)
        pthread_cond_wait(&calls_cv, &calls_mu);
}

void store_fork_parent(void)
{
    forking = 0;
    pthread_cond_broadcast(&calls_cv);
    pthread_mutex_unlock(&calls_mu);
}

void store_fork_child(void)
{
    forking = 0;
    ncalls = 0;
    t_calls = 0;
    pthread_cond_init(&calls_cv, NULL); /* waiters were the parent's */
    pthread_mutex_unlock(&calls_mu);
}

/* The store whose lock this thread holds, if any. */
static __thread store *t_locked;

/* Logs now, or, while this thread is inside a call under the store's lock,
 * once the lock is released (unlock), so the callback never runs under it. */
static void vlog(store *s, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vlog(store *s, int level, const char *fmt, va_list ap)
{
    if (s->log == NULL)
        return;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s plugin: ", TAB(s)->name);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    if (t_locked != s) {
        s->log(s->log_ud, level, msg);
    } else if (s->npending < STORE_PENDING) {
        s->pending[s->npending].level = level;
        snprintf(s->pending[s->npending++].msg, sizeof s->pending[0].msg,
                 "%s", msg);
    }
}

static void lock(store *s)
{
    calls_enter();
    pthread_mutex_lock(&s->lock);
    t_locked = s;
}

/* Releases the lock, then hands the held log lines to the callback. */
static void unlock(store *s)
{
    size_t n = s->npending;
    int level[STORE_PENDING];
    char msg[STORE_PENDING][256];
    for (size_t i = 0; i < n; i++) {
        level[i] = s->pending[i].level;
        memcpy(msg[i], s->pending[i].msg, sizeof msg[i]);
    }
    s->npending = 0;
    t_locked = NULL;
    pthread_mutex_unlock(&s->lock);
    calls_leave();
    for (size_t i = 0; i < n; i++)
        s->log(s->log_ud, level[i], msg[i]);
}

void store_log(const store *s, int level, const char *fmt, ...)
{
    if (s->log == NULL)
        return;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s plugin: ", TAB(s)->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    s->log(s->log_ud, level, msg);
}

static void host_log(const idp_host *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(const idp_host *h, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(h->host_data, level, fmt, ap);
    va_end(ap);
}

/* A plugin that failed without saying why still gets a message. */
static int plugin_failed(const store *s, int rc, idp_error *err)
{
    if (err == NULL)
        return rc;
    if (rc < IDP_EINVAL || rc > IDP_EUNSUPPORTED)
        rc = IDP_ESTORE;
    if (err->msg[0] == '\0')
        snprintf(err->msg, sizeof err->msg, "%s", idp_strerror(rc));
    err->code = rc;
    return idp_prefixerr(err, "%s plugin", TAB(s)->name);
}

/* A child reconnects here, on its first call after fork(). Called with
 * the lock held. */
static int ready(store *s, idp_error *err)
{
    if (s->handle != NULL)
        return IDP_OK;
    if (err != NULL)
        err->msg[0] = '\0';
    int rc = TAB(s)->open(&s->host, &s->handle, err);
    if (rc != IDP_OK) {
        s->handle = NULL;
        idp_prefixerr(err, "reconnecting (after fork)");
    }
    return rc;
}

#define CALL(s, err, expr)                                              \
    do {                                                                \
        if ((err) != NULL)                                              \
            (err)->msg[0] = '\0';                                       \
        lock(s);                                                        \
        int rc_ = ready((s), (err));                                    \
        if (rc_ == IDP_OK)                                              \
            rc_ = (expr);                                               \
        unlock(s);                                                      \
        return rc_ == IDP_OK ? IDP_OK : plugin_failed((s), rc_, (err)); \
    } while (0)

int store_open(store *s, const plugin_lib *lib, const uri_parsed *u,
               const engine_cfg *cfg, idp_log_fn log, void *log_ud,
               idp_error *err)
{
    memset(s, 0, sizeof *s);
    s->lib = lib;
    s->cfg = cfg;
    s->log = log;
    s->log_ud = log_ud;
    s->host = (idp_host){
        .abi_version = IDP_PLUGIN_ABI_VERSION,
        .size = sizeof(idp_host),
        .uri = &u->pub,
        .timeout_ms = (unsigned)cfg->timeout_ms,
        .param_str = host_param_str,
        .param_int = host_param_int,
        .log = host_log,
        .host_data = s,
    };
    pthread_mutex_init(&s->lock, NULL);
    if (err != NULL)
        err->msg[0] = '\0';
    calls_enter();
    int rc = TAB(s)->open(&s->host, &s->handle, err);
    calls_leave();
    if (rc != IDP_OK) {
        plugin_failed(s, rc, err);
        pthread_mutex_destroy(&s->lock);
        memset(s, 0, sizeof *s);
        return rc < IDP_EINVAL || rc > IDP_EUNSUPPORTED ? IDP_ESTORE : rc;
    }
    return IDP_OK;
}

void store_close(store *s)
{
    if (s->lib == NULL)
        return;
    calls_enter();
    if (s->handle != NULL)
        TAB(s)->close(s->handle);
    calls_leave();
    s->handle = NULL;
    pthread_mutex_destroy(&s->lock);
}

/* Handles dropped in children: kept reachable (a plugin's drop may leak
 * what it cannot free without I/O), never used again. */
static void **kept;
static size_t nkept;

void store_after_fork(store *s)
{
    pthread_mutex_init(&s->lock, NULL);
    t_locked = NULL;
    s->npending = 0;
    if (s->handle == NULL)
        return;
    void **grown = realloc(kept, (nkept + 1) * sizeof *grown);
    if (grown != NULL) {
        kept = grown;
        kept[nkept++] = s->handle;
    }
    if (PLUGIN_HAS(TAB(s), drop))
        TAB(s)->drop(s->handle);
    s->handle = NULL;
}

int store_incr(store *s, const char *key, uint64_t n, uint64_t *value,
               idp_error *err)
{
    CALL(s, err, TAB(s)->incr(s->handle, key, n, value, err));
}

void store_incr_many(store *s, idp_incr_op *ops, size_t nops, idp_error *errs)
{
    for (size_t i = 0; i < nops; i++)
        errs[i].msg[0] = '\0';
    lock(s);
    int rc = ready(s, &errs[0]);
    if (rc != IDP_OK) {
        for (size_t i = 0; i < nops; i++) {
            ops[i].status = rc;
            errs[i] = errs[0];
        }
    } else if (nops > 1 && PLUGIN_HAS(TAB(s), incr_many)) {
        rc = TAB(s)->incr_many(s->handle, ops, nops, errs);
        for (size_t i = 0; i < nops; i++) {
            if (rc != IDP_OK) {
                ops[i].status = rc;
                if (i > 0)
                    errs[i] = errs[0];
            } else if (ops[i].status != IDP_OK && errs[i].msg[0] == '\0') {
                snprintf(errs[i].msg, sizeof errs[i].msg, "increment of '%s' "
                         "failed in a pipelined batch", ops[i].key);
            }
        }
    } else {
        for (size_t i = 0; i < nops; i++)
            ops[i].status = TAB(s)->incr(s->handle, ops[i].key, ops[i].n,
                                         &ops[i].value, &errs[i]);
    }
    unlock(s);
    for (size_t i = 0; i < nops; i++)
        if (ops[i].status != IDP_OK)
            ops[i].status = plugin_failed(s, ops[i].status, &errs[i]);
}

int store_get(store *s, const char *key, uint64_t *value, int *exists,
              idp_error *err)
{
    CALL(s, err, TAB(s)->get(s->handle, key, value, exists, err));
}

int store_raise(store *s, const char *key, uint64_t value, uint64_t *result,
                idp_error *err)
{
    if (!PLUGIN_HAS(TAB(s), raise_to))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store cannot "
                          "raise a counter", TAB(s)->name);
    CALL(s, err, TAB(s)->raise_to(s->handle, key, value, result, err));
}

int store_can_lower(const store *s)
{
    return PLUGIN_HAS(TAB(s), lower);
}

int store_lower(store *s, idp_lower_op *ops, size_t nops, idp_error *err)
{
    if (!PLUGIN_HAS(TAB(s), lower))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store cannot "
                          "give IDs back", TAB(s)->name);
    CALL(s, err, TAB(s)->lower(s->handle, ops, nops, err));
}

int store_list(store *s, const char *prefix, idp_list_cb cb, void *ud,
               idp_error *err)
{
    if (!PLUGIN_HAS(TAB(s), list))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store cannot "
                          "list its counters (name them)", TAB(s)->name);
    if (err != NULL)
        err->msg[0] = '\0';
    void *h = NULL;
    calls_enter(); /* cb runs inside: it must not fork */
    int rc = TAB(s)->open(&s->host, &h, err);
    if (rc == IDP_OK) {
        rc = TAB(s)->list(h, prefix, cb, ud, err);
        TAB(s)->close(h);
    }
    calls_leave();
    return rc == IDP_OK ? IDP_OK : plugin_failed(s, rc, err);
}

int store_roundtrips(store *s, uint64_t *count, idp_error *err)
{
    const idp_plugin_testing *t = s->lib->testing;
    if (!TESTING_HAS(t, roundtrips))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store does "
                          "not count its increments", TAB(s)->name);
    CALL(s, err, t->roundtrips(s->handle, count, err));
}

int store_control(store *s, const char *command, idp_error *err)
{
    const idp_plugin_testing *t = s->lib->testing;
    if (!TESTING_HAS(t, control))
        return idp_seterr(err, IDP_EUNSUPPORTED, "%s plugin: the store takes "
                          "no control commands", TAB(s)->name);
    CALL(s, err, t->control(s->handle, command, err));
}
