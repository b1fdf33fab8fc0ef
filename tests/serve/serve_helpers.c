/*
 * serve_helpers.c - the server started and stopped, programs run with a
 * deadline, raw sockets (serve_helpers.h).
 */
#define _GNU_SOURCE /* nftw */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "serve_helpers.h"

long long sp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
}

static int status_of(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void sp_prepare_dir(sp_server *s)
{
    if (s->dir[0] != '\0')
        return;
    snprintf(s->dir, sizeof s->dir, "%s/idprime-serve.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_msg(mkdtemp(s->dir) != NULL, "mkdtemp: %s", strerror(errno));
}

const char *sp_logtext(const sp_server *s)
{
    static char buf[65536];
    buf[0] = '\0';
    FILE *f = fopen(s->log, "r");
    if (f == NULL)
        return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void exec_server(const sp_server *s, const char *const *args)
{
    const char *bin = getenv("IDPRIME_SERVE_BIN");
    const char *sub = getenv("IDPRIME_SERVE_SUBCMD");
    const char *argv[64];
    int n = 0, has_listen = 0;
    argv[n++] = bin;
    if (sub != NULL && *sub != '\0')
        argv[n++] = sub;
    for (int i = 0; args[i] != NULL; i++)
        if (strcmp(args[i], "--listen") == 0)
            has_listen = 1;
    if (!has_listen) {
        argv[n++] = "--listen";
        argv[n++] = "127.0.0.1:0";
    }
    for (int i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null = open("/dev/null", O_RDONLY);
    if (fd < 0 || null < 0)
        _exit(126);
    dup2(null, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execv(bin, (char *const *)argv);
    _exit(127);
}

/* The number after `key` in text, or 0. */
static int port_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (p == NULL)
        return 0;
    p += strlen(key);
    const char *colon = strchr(p, ':');
    return colon != NULL ? atoi(colon + 1) : 0;
}

/* The server's ready line, "idprime serve: listening on ADDR:PORT", at the
 * start of a line of its log (the usage text a refused option prints also
 * says "listening on"); NULL until it is there. */
static const char *ready_line(const char *log)
{
    static const char ready[] = "idprime serve: listening on ";
    for (const char *p = log; p != NULL; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, ready, sizeof ready - 1) == 0)
            return p;
    }
    return NULL;
}

int sp_start(sp_server *s, const char *const *args)
{
    ck_assert_msg(getenv("IDPRIME_SERVE_BIN") != NULL,
                  "IDPRIME_SERVE_BIN is not set");
    sp_prepare_dir(s);
    snprintf(s->log, sizeof s->log, "%s/serve.log", s->dir);
    unlink(s->log);
    s->port = s->mport = 0;
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        exec_server(s, args);
    s->pid = pid;
    long long deadline = sp_now_ms() + 30000;
    while (sp_now_ms() < deadline) {
        const char *log = sp_logtext(s);
        const char *ready = ready_line(log);
        if (ready != NULL) {
            s->port = port_after(ready, "listening on ");
            s->mport = port_after(log, "metrics on http://");
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            return status_of(st);
        }
        nap();
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    s->pid = 0;
    fprintf(stderr, "the server did not start within 30 s:\n%s\n",
            sp_logtext(s));
    return -1;
}

void sp_start_ok(sp_server *s, const char *const *args)
{
    int rc = sp_start(s, args);
    ck_assert_msg(rc == 0 && s->port > 0, "the server did not start (%d):\n%s",
                  rc, sp_logtext(s));
}

int sp_wait(sp_server *s, int ms)
{
    if (s->pid == 0)
        return -1;
    long long deadline = sp_now_ms() + ms;
    do {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return status_of(st);
        }
        nap();
    } while (sp_now_ms() < deadline);
    return -1;
}

int sp_stop(sp_server *s)
{
    if (s->pid == 0)
        return -1;
    kill(s->pid, SIGTERM);
    int rc = sp_wait(s, 30000);
    if (rc == -1 && s->pid != 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    return rc;
}

int sp_run(char *out, size_t outlen, int timeout_ms, const char *const *argv)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t used = 0;
    long long deadline = sp_now_ms() + timeout_ms;
    int timed_out = 0;
    for (;;) {
        long long left = deadline - sp_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        char chunk[4096];
        ssize_t n = read(p[0], chunk, sizeof chunk);
        if (n <= 0)
            break;
        size_t take = (size_t)n < outlen - 1 - used ? (size_t)n
                                                     : outlen - 1 - used;
        memcpy(out + used, chunk, take);
        used += take;
    }
    out[used] = '\0';
    close(p[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    return timed_out ? -1 : status_of(st);
}

int sp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "connect to port %d: %s", port, strerror(errno));
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

void sp_send(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        ck_assert_msg(n > 0, "send: %s", strerror(errno));
        s += n;
        len -= (size_t)n;
    }
}

size_t sp_recv(int fd, char *buf, size_t want, int ms)
{
    size_t got = 0;
    long long deadline = sp_now_ms() + ms;
    while (got < want) {
        long long left = deadline - sp_now_ms();
        if (left <= 0)
            break;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, want - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

void sp_expect(int fd, const char *want)
{
    size_t len = strlen(want);
    char *buf = malloc(len + 1);
    ck_assert(buf != NULL);
    size_t got = sp_recv(fd, buf, len, 10000);
    ck_assert_msg(got == len && memcmp(buf, want, len) == 0,
                  "got '%s' (%zu bytes), want '%s'", buf, got, want);
    free(buf);
}

int sp_closed(int fd, int ms)
{
    long long deadline = sp_now_ms() + ms;
    for (;;) {
        long long left = deadline - sp_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 1;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return 1;
    }
}

int sp_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

int sp_http_get(int port, const char *path, char *buf, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t got = sp_recv(fd, buf, len - 1, 10000);
    close(fd);
    int status = -1;
    if (got < 12 || sscanf(buf, "HTTP/%*s %d", &status) != 1)
        return -1;
    char *body = strstr(buf, "\r\n\r\n");
    if (body != NULL)
        memmove(buf, body + 4, strlen(body + 4) + 1);
    return status;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void sp_done(sp_server *s)
{
    if (s->pid != 0)
        sp_stop(s);
    if (s->dir[0] != '\0')
        nftw(s->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}
