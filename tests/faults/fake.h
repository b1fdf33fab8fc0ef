/*
 * fake.h - fake Redis and memcached servers on 127.0.0.1, run on a thread
 * of the test, that answer what a script says: garbage, a reply cut short,
 * a closed connection, silence, a well-formed but wrong value, or a correct
 * answer.
 *
 * A fake Redis speaks RESP: it answers PING, CONFIG GET (noeviction,
 * appendonly yes), GET of its one counter, SELECT/AUTH with +OK, and each
 * INCRBY from the script. A fake memcached speaks the binary protocol: it
 * answers STAT ("evictions off"), GET (not found), ADD/SET (stored), NOOP,
 * VERSION, and each INCR from the script. Once the script is used up every
 * increment gets the correct answer: the fake's counter plus the delta.
 * Several connections are served at once (a client reconnects after each
 * failure).
 */
#ifndef IDPRIME_FAKE_H
#define IDPRIME_FAKE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef enum fake_kind { FAKE_REDIS, FAKE_MEMCACHED } fake_kind;

typedef enum fake_act {
    FAKE_GOOD,   /* the correct answer: counter += delta */
    FAKE_SEND,   /* `bytes` (len) as the whole reply; `close` after it */
    FAKE_VALUE,  /* a well-formed reply carrying `value` (counter unchanged) */
    FAKE_SILENT, /* no reply; the connection stays open but deaf */
    FAKE_CLOSE,  /* close the connection without a byte */
    FAKE_MC,     /* memcached: a response header built from `magic` (0:
                    0x81), `status`, `bodylen` (declared), then `bytes`
                    (len) as the body actually sent; `close` after it */
    FAKE_TWICE,  /* two well-formed replies to one increment: `value`,
                    then `value2` */
} fake_act;

typedef struct fake_step {
    fake_act act;
    const char *bytes;
    size_t len;
    int close;
    uint64_t value, value2;
    uint8_t magic;
    uint16_t status;
    uint32_t bodylen;
    uint16_t add_status;  /* memcached: the status of the ADDs that follow
                             this increment (0: stored; 0x0082: out of
                             memory), until the next increment */
} fake_step;

#define FAKE_MAX_STEPS 32

typedef struct fake {
    fake_kind kind;
    int port;
    int lfd;
    int wake[2];
    pthread_t th;
    pthread_mutex_t mu;
    fake_step steps[FAKE_MAX_STEPS];  /* the script, under mu */
    size_t nsteps, next;
    uint64_t value;                   /* the counter, under mu */
    unsigned increments;              /* increments received, under mu */
    uint64_t last_delta;              /* the latest increment's delta,
                                         under mu */
    uint16_t add_status;              /* memcached: the status of ADD
                                         replies (0: stored), under mu */
} fake;

/* Starts a fake server of `kind` on a free loopback port. Returns 0, or -1
 * with the reason on stderr. */
int fake_start(fake *f, fake_kind kind);

/* Replaces the script: the next increments get steps[0..n-1] in order. */
void fake_script(fake *f, const fake_step *steps, size_t n);

/* Increments received so far. */
unsigned fake_increments(fake *f);

/* The delta the latest increment asked for. */
uint64_t fake_last_delta(fake *f);

/* Sets the counter a correct answer adds to. */
void fake_set_value(fake *f, uint64_t v);

/* Stops the thread and closes every connection. */
void fake_stop(fake *f);

#endif
