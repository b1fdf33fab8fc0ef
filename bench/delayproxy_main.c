/*
 * delayproxy_main.c - idprime-delayproxy, the delay proxy as a program:
 *
 *   idprime-delayproxy [--seconds S] PORT TARGET_PORT RTT_MS
 *
 * Listens on 127.0.0.1:PORT (0: a free port), forwards to
 * 127.0.0.1:TARGET_PORT and holds every chunk RTT_MS/2 in each direction.
 * Prints the port it listens on, alone on a line, once it accepts
 * connections. Runs until SIGINT or SIGTERM, or for S seconds.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "delayproxy.h"

static const char usage[] =
    "usage: idprime-delayproxy [--seconds S] PORT TARGET_PORT RTT_MS\n"
    "Forwards 127.0.0.1:PORT (0: a free port, printed) to 127.0.0.1:TARGET_PORT,\n"
    "holding each chunk RTT_MS/2 milliseconds in each direction, in order.\n"
    "Runs until SIGINT/SIGTERM, or for S seconds (1..86400).\n";

/* A whole decimal number in [min, max], or -1. */
static long number(const char *s, long min, long max)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    return v;
}

static int bad(const char *what, const char *value, const char *range)
{
    fprintf(stderr, "idprime-delayproxy: %s '%s': expected a whole number in "
            "%s\n%s", what, value, range, usage);
    return 2;
}

int main(int argc, char **argv)
{
    long seconds = 0;
    int i = 1;
    if (i < argc && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (i < argc && strcmp(argv[i], "--seconds") == 0) {
        if (i + 1 >= argc) {
            fprintf(stderr, "idprime-delayproxy: --seconds needs a value\n%s",
                    usage);
            return 2;
        }
        if ((seconds = number(argv[i + 1], 1, 86400)) < 0)
            return bad("--seconds", argv[i + 1], "1..86400");
        i += 2;
    }
    if (argc - i != 3) {
        fprintf(stderr, "idprime-delayproxy: expected PORT TARGET_PORT RTT_MS, "
                "got %d argument%s\n%s", argc - i, argc - i == 1 ? "" : "s",
                usage);
        return 2;
    }
    long port = number(argv[i], 0, 65535);
    long target = number(argv[i + 1], 1, 65535);
    long rtt = number(argv[i + 2], 0, 60000);
    if (port < 0)
        return bad("PORT", argv[i], "0..65535");
    if (target < 0)
        return bad("TARGET_PORT", argv[i + 1], "1..65535");
    if (rtt < 0)
        return bad("RTT_MS", argv[i + 2], "0..60000");

    /* The signals that stop it arrive on a descriptor the loop watches. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "idprime-delayproxy: signalfd: %s\n", strerror(errno));
        return 1;
    }
    char msg[256];
    int bound;
    int lfd = dp_listen((int)port, &bound, msg, sizeof msg);
    if (lfd < 0) {
        fprintf(stderr, "idprime-delayproxy: %s\n", msg);
        return 1;
    }
    printf("%d\n", bound);
    fflush(stdout);
    if (seconds > 0)
        alarm((unsigned)seconds);
    int rc = dp_run(lfd, (int)target, (uint64_t)rtt * 1000000u / 2, sfd, NULL,
                    msg, sizeof msg);
    if (rc != 0)
        fprintf(stderr, "idprime-delayproxy: %s\n", msg);
    close(lfd);
    close(sfd);
    return rc == 0 ? 0 : 1;
}
