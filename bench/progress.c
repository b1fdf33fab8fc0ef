/*
 * progress.c - the run's watcher: a progress bar and the time limit.
 */
#include <string.h>
#include <time.h>

#include "progress.h"

#define TICK_MS 100
#define BAR_AFTER_S 1.0
#define BAR_WIDTH 30

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void draw(monitor *m, double elapsed)
{
    uint64_t done = atomic_load_explicit(&m->done, memory_order_relaxed);
    double f = m->total > 0 ? (double)done / (double)m->total : 0;
    if (f > 1)
        f = 1;
    char bar[BAR_WIDTH + 1];
    int full = (int)(f * BAR_WIDTH);
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < full ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(m->out, "\r  %s [%s] %3d%% %6.1f s", m->label, bar,
            (int)(f * 100), elapsed);
    fflush(m->out);
    m->drew = 1;
}

static const atomic_int *interrupt_flag;

void bench_set_interrupt(const atomic_int *flag)
{
    interrupt_flag = flag;
}

int bench_interrupted(void)
{
    return interrupt_flag != NULL &&
           atomic_load_explicit(interrupt_flag, memory_order_relaxed) != 0;
}

static void *watch(void *arg)
{
    monitor *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->finished) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_nsec += TICK_MS * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->cv, &m->mu, &dl);
        if (m->finished)
            break;
        double elapsed = bench_now() - m->t0;
        if ((m->limit_s > 0 && elapsed >= m->limit_s) || bench_interrupted())
            atomic_store(&m->stop, 1);
        if (m->out != NULL && elapsed >= BAR_AFTER_S)
            draw(m, elapsed);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int monitor_start(monitor *m, FILE *out, const char *label, uint64_t total,
                  double limit_s)
{
    memset(m, 0, sizeof *m);
    m->out = out;
    snprintf(m->label, sizeof m->label, "%s", label);
    m->total = total;
    m->limit_s = limit_s;
    m->t0 = bench_now();
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&m->thread, NULL, watch, m) != 0)
        return -1;
    m->running = 1;
    return 0;
}

void monitor_end(monitor *m)
{
    if (m->running) {
        pthread_mutex_lock(&m->mu);
        m->finished = 1;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
        m->running = 0;
    }
    if (m->drew) {
        fputs("\r\033[K", m->out);
        fflush(m->out);
    }
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
}
