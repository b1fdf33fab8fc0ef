/*
 * relay.h - a TCP relay on 127.0.0.1 in front of a real server, run on a
 * thread of the test, that spoils the server's answers on demand: garbage
 * in place of the next reply, the next reply cut short and the connection
 * closed, or every reply swallowed (a server gone silent).
 *
 * It is the fault suite's way to make PostgreSQL and MariaDB answer
 * nonsense: their protocols (startup, authentication, prepared
 * statements) are too much for a fake of their own, and the relay needs
 * none of them. Everything else passes through byte for byte, so the
 * client talks to the real server and the real server keeps the counters.
 */
#ifndef IDPRIME_RELAY_H
#define IDPRIME_RELAY_H

#include <pthread.h>

typedef enum relay_mode {
    RELAY_PASS,     /* bytes through, both ways */
    RELAY_GARBAGE,  /* the next chunk from the server is replaced by as
                       many bytes of garbage; then RELAY_PASS */
    RELAY_CUT,      /* half of the next chunk from the server goes
                       through, then both sides are closed; then
                       RELAY_PASS */
    RELAY_SILENT,   /* every chunk from the server is dropped, until the
                       mode changes */
} relay_mode;

typedef struct relay {
    int port;              /* where clients connect */
    int upstream;          /* the server's port on 127.0.0.1 */
    int lfd;
    int wake[2];
    pthread_t th;
    pthread_mutex_t mu;
    relay_mode mode;       /* under mu */
    unsigned spoiled;      /* chunks garbled, cut or dropped, under mu */
} relay;

/* Starts a relay to 127.0.0.1:upstream on a free loopback port. Returns 0,
 * or -1 with the reason on stderr. */
int relay_start(relay *r, int upstream);

/* Sets the mode for the chunks that follow. */
void relay_set(relay *r, relay_mode mode);

/* Chunks spoiled so far. */
unsigned relay_spoiled(relay *r);

/* Stops the thread and closes every connection. */
void relay_stop(relay *r);

#endif
