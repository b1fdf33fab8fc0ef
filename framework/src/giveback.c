/*
 * giveback.c - a clean idp_close gives back what its last batches did not
 * serve (DESIGN: Semantics 7).
 *
 * The IDs a client holds unserved at the top of what it fetched form one
 * stretch below its last fetch's end: the ready batch, the segment under
 * it when it ends where the batch begins (nobody fetched in between), and
 * the rest of the run last claimed from that segment. The store's value is
 * lowered to the bottom of that stretch, compare-and-set on the last
 * fetch's end, so it only happens when nobody fetched after us: then no ID
 * above the new value was ever handed out, by anyone. Everything that left
 * the pool for a caller cache, a direct fetch or an older run counts as
 * handed out. Called after the engine stopped: no call is running, so no
 * run moves.
 */
#include <stdlib.h>

#include "internal.h"

#define LOWER_CHUNK 256   /* counters given back per store call */

/* The value the store may go down to: the bottom of the unserved stretch
 * ending at c->high, or c->high when there is nothing to give back.
 * Under c->mu. */
static uint64_t lowest_unserved(idp_counter *c)
{
    uint64_t t = c->high;
    if (c->legacy || c->pool_top == 0 || c->pool_top != c->high)
        return t;
    if (c->has_ready && c->ready_base + c->ready_len - 1 == t)
        t = c->ready_base - 1;
    if (c->cur < c->cur_end && c->cur_end - 1 == t)
        t = c->cur - 1;
    /* Runs are disjoint: at most one ends where the stretch begins. */
    for (tlease *l = c->leases; l != NULL; l = l->cnext) {
        uint64_t end = atomic_load_explicit(&l->end, memory_order_relaxed);
        uint64_t next = atomic_load_explicit(&l->next, memory_order_relaxed);
        if (end == t + 1 && next < end) {
            t = next - 1;
            break;
        }
    }
    return t;
}

/* Sends the chunk's ops; logs what came back, counts what was lowered. */
static void lower_chunk(idp_client *cl, idp_lower_op *ops, idp_counter **cs,
                        size_t n)
{
    idp_error err;
    if (store_lower(&cl->st, ops, n, &err) != IDP_OK) {
        store_log(&cl->st, IDP_LOG_WARN, "giving back on close: %s (the "
                  "unserved IDs of %zu counters are a gap)", err.msg, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        idp_counter *c = cs[i];
        if (ops[i].status != IDP_OK)
            store_log(&cl->st, IDP_LOG_WARN, "counter '%s': giving back "
                      "failed (%d): the unserved IDs are a gap", c->name,
                      ops[i].status);
        else if (ops[i].done)
            store_log(&cl->st, IDP_LOG_DEBUG, "counter '%s': gave back "
                      "%llu IDs (the store is at %llu again)", c->name,
                      (unsigned long long)(ops[i].expect - ops[i].value),
                      (unsigned long long)ops[i].value);
        else
            store_log(&cl->st, IDP_LOG_DEBUG, "counter '%s': another client "
                      "fetched after our last batch: nothing given back",
                      c->name);
    }
}

void engine_give_back(idp_client *cl)
{
    if (cl->cfg.give_back == 0 || !store_can_lower(&cl->st))
        return;
    idp_lower_op ops[LOWER_CHUNK];
    idp_counter *cs[LOWER_CHUNK];
    size_t n = 0;
    for (size_t b = 0; b < cl->nbuckets; b++) {
        for (idp_counter *c = cl->table[b]; c != NULL; c = c->hnext) {
            pthread_mutex_lock(&c->mu);
            uint64_t to = lowest_unserved(c);
            if (to < c->high) {
                ops[n] = (idp_lower_op){c->key, c->high, to, 0, IDP_OK};
                cs[n++] = c;
            }
            pthread_mutex_unlock(&c->mu);
            if (n == LOWER_CHUNK) {
                lower_chunk(cl, ops, cs, n);
                n = 0;
            }
        }
    }
    if (n > 0)
        lower_chunk(cl, ops, cs, n);
}
