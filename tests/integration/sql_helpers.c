/*
 * sql_helpers.c - faults that hit every process of a server, shared by
 * the PostgreSQL and MariaDB suites and test_fork (the log they assert on
 * is log_helpers.c's). PostgreSQL is a postmaster and its backends: the postmaster
 * alone stopped or killed would leave its backends serving. mariadbd is
 * one process, so for it these are the harness's own pause and kill.
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql_helpers.h"
#include "testutil.h"

uint64_t prime_calls(idp_counter *ctr)
{
    return tu_stats(ctr).prime_calls;
}

/* The processes s->pid started, in pids (none but PostgreSQL's have any). */
static size_t children(const server *s, pid_t *pids, size_t max)
{
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL && n < max;) {
        char path[300], line[512];
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char *p = fgets(line, sizeof line, f) != NULL ? strrchr(line, ')')
                                                      : NULL;
        fclose(f);
        int ppid = 0;
        char state;
        if (p != NULL && sscanf(p + 2, "%c %d", &state, &ppid) == 2 &&
            ppid == (int)s->pid && state != 'Z')
            pids[n++] = (pid_t)atoi(de->d_name);
    }
    closedir(d);
    return n;
}

/* The state letter of pid ('T' stopped, 'Z' dead), or 0 when gone. */
static char state_of(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char *p = fgets(line, sizeof line, f) != NULL ? strrchr(line, ')') : NULL;
    fclose(f);
    return p != NULL ? p[2] : 0;
}

/* SIGSTOP to the server and then to each of its processes (the parent
 * first: it starts no new one), and waits until all are stopped. */
void hang_all(const server *s)
{
    pid_t pids[128];
    ck_assert_int_eq(server_pause(s), 0);
    size_t n = children(s, pids, 128);
    for (size_t i = 0; i < n; i++)
        kill(pids[i], SIGSTOP);
    long long deadline = tu_now_ms() + 2000;
    for (size_t i = 0; i < n; i++)
        for (char c; (c = state_of(pids[i])) != 0 && c != 'T' && c != 't' &&
                     c != 'Z';) {
            ck_assert_msg(tu_now_ms() < deadline, "%s process %d did not "
                          "stop", s->kind, (int)pids[i]);
            tu_sleep_ms(2);
        }
}

void resume_all(const server *s)
{
    pid_t pids[128];
    size_t n = children(s, pids, 128);
    for (size_t i = 0; i < n; i++)
        kill(pids[i], SIGCONT);
    kill(s->pid, SIGCONT);
}

/* SIGKILL to every process of the server (the parent stopped first, so
 * that it does not react), then waits until they are gone. */
void crash_all(server *s)
{
    pid_t pids[128];
    ck_assert_int_eq(server_pause(s), 0);
    size_t n = children(s, pids, 128);
    for (size_t i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    server_kill(s);
    long long deadline = tu_now_ms() + 5000;
    for (size_t i = 0; i < n; i++)
        for (char c; (c = state_of(pids[i])) != 0 && c != 'Z';) {
            ck_assert_msg(tu_now_ms() < deadline, "%s process %d survived "
                          "SIGKILL", s->kind, (int)pids[i]);
            tu_sleep_ms(5);
        }
}
