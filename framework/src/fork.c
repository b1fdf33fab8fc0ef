/*
 * fork.c - what a child process discards after fork(), the generation
 * cells that idp_cache checks, and process-wide unique ids.
 *
 * In the child, every client inherited from the parent holds IDs the
 * parent holds too: pools, the threads' runs, caches. The fork handler
 * (which runs in the child's only thread) bumps the fork epoch, every
 * cell's generation (revoking every cache) and forgets the thread's runs;
 * each client then notices the new epoch on its next slow call and
 * discards the rest (fork_check_slow): its locks, which threads that do
 * not exist here may hold, are made anew; its pools and runs are dropped
 * (a gap); its store connection is dropped without a byte sent, and opened
 * again on the next store call; its worker is started again on first use.
 * Programs that open once and fork workers just work, in both processes.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Atomic uint64_t fork_epoch = 1;

/* Held in the prepare handler, so the child finds them consistent and
 * unlocks them (it is the thread that locked them). */
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cell_mu = PTHREAD_MUTEX_INITIALIZER;

#define CELLS_PER_CHUNK 64

typedef struct cell_chunk {
    gen_cell cells[CELLS_PER_CHUNK];
    struct cell_chunk *next;
} cell_chunk;

static cell_chunk *chunks;    /* never freed: caches of closed clients read
                                 their cell */
static gen_cell *cell_free;
static _Atomic uint64_t uid_seq;

uint64_t next_uid(void)
{
    return atomic_fetch_add_explicit(&uid_seq, 1, memory_order_relaxed) + 1;
}

static void before_fork(void)
{
    store_fork_prepare();
    dispatcher_lock();
    pthread_mutex_lock(&fork_mu);
    pthread_mutex_lock(&cell_mu);
    pthread_mutex_lock(&lease_mu);
}

static void in_parent(void)
{
    pthread_mutex_unlock(&lease_mu);
    pthread_mutex_unlock(&cell_mu);
    pthread_mutex_unlock(&fork_mu);
    dispatcher_unlock();
    store_fork_parent();
}

static void in_child(void)
{
    atomic_fetch_add(&fork_epoch, 1);
    for (cell_chunk *ch = chunks; ch != NULL; ch = ch->next)
        for (size_t i = 0; i < CELLS_PER_CHUNK; i++)
            atomic_fetch_add(&ch->cells[i].gen, 1);
    thread_after_fork();
    pthread_mutex_unlock(&lease_mu);
    pthread_mutex_unlock(&cell_mu);
    pthread_mutex_unlock(&fork_mu);
    dispatcher_unlock();
    store_fork_child();
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void register_handlers(void)
{
    pthread_atfork(before_fork, in_parent, in_child);
}

void fork_init(void)
{
    pthread_once(&fork_once, register_handlers);
}

gen_cell *cell_get(uint64_t owner)
{
    pthread_mutex_lock(&cell_mu);
    if (cell_free == NULL) {
        cell_chunk *ch = calloc(1, sizeof *ch);
        if (ch == NULL) {
            pthread_mutex_unlock(&cell_mu);
            return NULL;
        }
        ch->next = chunks;
        chunks = ch;
        for (size_t i = CELLS_PER_CHUNK; i-- > 0;) {
            ch->cells[i].next_free = cell_free;
            cell_free = &ch->cells[i];
        }
    }
    gen_cell *cell = cell_free;
    cell_free = cell->next_free;
    atomic_store(&cell->owner, owner);
    pthread_mutex_unlock(&cell_mu);
    return cell;
}

void cell_put(gen_cell *cell)
{
    pthread_mutex_lock(&cell_mu);
    atomic_fetch_add(&cell->gen, 1); /* every cache of the client: revoked */
    atomic_store(&cell->owner, 0);
    cell->next_free = cell_free;
    cell_free = cell;
    pthread_mutex_unlock(&cell_mu);
}

/* Makes a counter's locks anew and drops what it held. */
static void counter_after_fork(idp_counter *c)
{
    engine_counter_locks(c);
    leases_drop_all(c);
    c->cur = c->cur_end; /* the parent's: a gap here */
    c->has_ready = 0;
    c->pool_top = 0;     /* nothing of the parent's is given back here */
    c->inflight = 0;
    c->queued = 0;
    c->qnext = NULL;
    c->want_seg = c->trig_seg = c->seg_id;
}

void fork_check_slow(idp_client *cl)
{
    pthread_mutex_lock(&fork_mu);
    uint64_t epoch = atomic_load(&fork_epoch);
    if (atomic_load_explicit(&cl->epoch, memory_order_relaxed) != epoch) {
        pthread_mutex_init(&cl->mu, NULL);
        pthread_mutex_init(&cl->qmu, NULL);
        pthread_cond_init(&cl->qcv, NULL);
        cl->queue = NULL;
        cl->worker_running = 0;
        cl->stopping = 0;
        atomic_store(&cl->active, 0);
        store_after_fork(&cl->st);
        for (size_t b = 0; b < cl->nbuckets; b++)
            for (idp_counter *c = cl->table[b]; c != NULL; c = c->hnext)
                counter_after_fork(c);
        atomic_store_explicit(&cl->epoch, epoch, memory_order_release);
    }
    pthread_mutex_unlock(&fork_mu);
}
