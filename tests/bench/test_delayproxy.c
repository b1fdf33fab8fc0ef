/*
 * test_delayproxy.c - the bench's TCP delay proxy: bytes arrive identical
 * and in order both ways, one connection or many at once; each direction is
 * held half the round trip; an EOF follows the data; a target that is down
 * or a proxy that stops closes the client's connection. The standalone
 * idprime-delayproxy prints its port, forwards, stops on SIGTERM or after
 * --seconds, and refuses bad arguments with exit code 2.
 *
 * Correctness is asserted exactly; times only against a lower bound (the
 * delay is never shorter than asked) and generous upper bounds.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "proxy_ctl.h"

#define IO_TIMEOUT_S 10

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- An echo server on a thread: one thread per connection ------------ */

typedef struct echo {
    int fd, port;
    _Atomic int stop;
    pthread_t thread;
    /* the arrival time of the first byte of the last connection */
    _Atomic double first_byte_at;
} echo;

typedef struct echo_conn {
    echo *e;
    int fd;
} echo_conn;

static void *echo_conn_main(void *arg)
{
    echo_conn *ec = arg;
    char buf[65536];
    int first = 1;
    for (;;) {
        ssize_t n = recv(ec->fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        if (first) {
            atomic_store(&ec->e->first_byte_at, now_s());
            first = 0;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(ec->fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    close(ec->fd); /* after the client's EOF: close ours, after the data */
    free(ec);
    return NULL;
}

static void *echo_main(void *arg)
{
    echo *e = arg;
    while (!atomic_load(&e->stop)) {
        struct pollfd p = {e->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(e->fd, NULL, NULL);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        echo_conn *ec = malloc(sizeof *ec);
        ck_assert_ptr_nonnull(ec);
        *ec = (echo_conn){e, fd};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, echo_conn_main, ec), 0);
        pthread_detach(t);
    }
    return NULL;
}

static int listen_free(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void echo_start(echo *e)
{
    memset(e, 0, sizeof *e);
    atomic_init(&e->stop, 0);
    e->fd = listen_free(&e->port);
    ck_assert_int_eq(pthread_create(&e->thread, NULL, echo_main, e), 0);
}

static void echo_stop(echo *e)
{
    atomic_store(&e->stop, 1);
    pthread_join(e->thread, NULL);
    close(e->fd);
}

/* A port nobody listens on (bound, then released). */
static int dead_port(void)
{
    int port, fd = listen_free(&port);
    close(fd);
    return port;
}

/* ---- Client helpers ----------------------------------------------------- */

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "connect to 127.0.0.1:%d: %s", port, strerror(errno));
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const void *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, (const char *)buf + off, n - off, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        off += (size_t)w;
    }
}

static void recv_all(int fd, void *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t r = recv(fd, (char *)buf + off, n - off, 0);
        ck_assert_msg(r > 0, "recv after %zu of %zu bytes: %s", off, n,
                      r == 0 ? "EOF" : strerror(errno));
        off += (size_t)r;
    }
}

/* The byte at position i of a stream: a pattern that shows reordering. */
static unsigned char pattern(uint64_t seed, uint64_t i)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29;
    return (unsigned char)(x * 0xBF58476D1CE4E5B9ull >> 56);
}

typedef struct writer {
    int fd;
    size_t total;
    uint64_t seed;
} writer;

/* Writes the pattern in chunks of varying size, then half-closes. */
static void *write_pattern(void *arg)
{
    writer *w = arg;
    unsigned char buf[70000];
    size_t off = 0, step = 1;
    while (off < w->total) {
        size_t n = step % sizeof buf;
        n = n == 0 ? 1 : n;
        if (n > w->total - off)
            n = w->total - off;
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(w->seed, off + i);
        send_all(w->fd, buf, n);
        off += n;
        step = step * 7 + 13;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

/* ---- Library: the proxy on a thread ------------------------------------ */

START_TEST(bytes_identical_and_in_order_both_ways)
{
    echo e;
    echo_start(&e);
    char msg[256];
    bench_proxy *p = bench_proxy_start(e.port, 10, msg, sizeof msg);
    ck_assert_msg(p != NULL, "%s", msg);
    int fd = dial(bench_proxy_port(p));
    writer w = {fd, 3u << 20, 42};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, write_pattern, &w), 0);
    unsigned char buf[65536];
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        ck_assert_msg(r >= 0, "recv: %s", strerror(errno));
        if (r == 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            ck_assert_msg(buf[i] == pattern(42, got + (size_t)i),
                          "byte %zu differs", got + (size_t)i);
        got += (size_t)r;
    }
    pthread_join(t, NULL);
    ck_assert_uint_eq(got, w.total);     /* all of it, then the EOF */
    const dp_stats *st = bench_proxy_stats(p);
    ck_assert_uint_eq(atomic_load(&st->bytes_up), w.total);
    ck_assert_uint_eq(atomic_load(&st->bytes_down), w.total);
    ck_assert_uint_eq(atomic_load(&st->accepted), 1);
    close(fd);
    bench_proxy_stop(p);
    echo_stop(&e);
}
END_TEST

START_TEST(a_round_trip_takes_the_asked_time_half_each_way)
{
    echo e;
    echo_start(&e);
    char msg[256];
    bench_proxy *p = bench_proxy_start(e.port, 40, msg, sizeof msg);
    ck_assert_msg(p != NULL, "%s", msg);
    int fd = dial(bench_proxy_port(p));
    for (int i = 0; i < 5; i++) {
        char c = (char)('a' + i), back = 0;
        double t0 = now_s();
        send_all(fd, &c, 1);
        recv_all(fd, &back, 1);
        double rt = now_s() - t0, one_way = atomic_load(&e.first_byte_at) - t0;
        ck_assert_int_eq(back, c);
        /* never shorter than asked; bounded above generously */
        ck_assert_msg(rt >= 0.040 && rt < 0.040 + 1.0, "round trip %.4f s", rt);
        if (i == 0)
            ck_assert_msg(one_way >= 0.020 && one_way < 0.020 + 1.0,
                          "one way %.4f s", one_way);
    }
    close(fd);
    bench_proxy_stop(p);
    echo_stop(&e);
}
END_TEST

typedef struct pinger {
    int port, id, rounds;
    double worst;
    int ok;
} pinger;

static void *ping_main(void *arg)
{
    pinger *pg = arg;
    int fd = dial(pg->port);
    for (int r = 0; r < pg->rounds; r++) {
        char out[100], in[100];
        for (size_t i = 0; i < sizeof out; i++)
            out[i] = (char)(pg->id * 31 + r * 7 + (int)i);
        double t0 = now_s();
        send_all(fd, out, sizeof out);
        recv_all(fd, in, sizeof in);
        double rt = now_s() - t0;
        pg->worst = rt > pg->worst ? rt : pg->worst;
        if (memcmp(in, out, sizeof in) != 0)
            return NULL;
        if (rt < 0.050)
            return NULL;
    }
    close(fd);
    pg->ok = 1;
    return NULL;
}

START_TEST(concurrent_connections_each_get_their_own_bytes_at_once)
{
    echo e;
    echo_start(&e);
    char msg[256];
    bench_proxy *p = bench_proxy_start(e.port, 50, msg, sizeof msg);
    ck_assert_msg(p != NULL, "%s", msg);
    enum { N = 16, ROUNDS = 5 };
    pinger pg[N];
    pthread_t t[N];
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
        pg[i] = (pinger){bench_proxy_port(p), i, ROUNDS, 0, 0};
        ck_assert_int_eq(pthread_create(&t[i], NULL, ping_main, &pg[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    double wall = now_s() - t0;
    for (int i = 0; i < N; i++)
        ck_assert_msg(pg[i].ok, "connection %d: wrong bytes or a round trip "
                      "under 50 ms (worst %.4f s)", i, pg[i].worst);
    ck_assert_uint_eq(atomic_load(&bench_proxy_stats(p)->accepted), N);
    /* at once: about ROUNDS * 50 ms; one after the other N times that */
    ck_assert_msg(wall < N * ROUNDS * 0.050 / 3, "%d connections took %.2f s: "
                  "not served at once", N, wall);
    bench_proxy_stop(p);
    echo_stop(&e);
}
END_TEST

START_TEST(an_eof_follows_the_data)
{
    echo e;
    echo_start(&e);
    char msg[256];
    bench_proxy *p = bench_proxy_start(e.port, 20, msg, sizeof msg);
    ck_assert_msg(p != NULL, "%s", msg);
    int fd = dial(bench_proxy_port(p));
    char out[1000], in[1000], extra;
    memset(out, 'x', sizeof out);
    send_all(fd, out, sizeof out);
    shutdown(fd, SHUT_WR); /* the echo server sees it after the data */
    recv_all(fd, in, sizeof in);
    ck_assert_int_eq(memcmp(in, out, sizeof in), 0);
    ck_assert_int_eq(recv(fd, &extra, 1, 0), 0);
    close(fd);
    bench_proxy_stop(p);
    echo_stop(&e);
}
END_TEST

START_TEST(a_target_that_is_down_closes_the_connection)
{
    char msg[256];
    bench_proxy *p = bench_proxy_start(dead_port(), 10, msg, sizeof msg);
    ck_assert_msg(p != NULL, "%s", msg);
    int fd = dial(bench_proxy_port(p));
    char c;
    double t0 = now_s();
    ssize_t r = recv(fd, &c, 1, 0);
    ck_assert_msg(r == 0 || (r < 0 && errno == ECONNRESET), "recv: %zd %s", r,
                  strerror(errno));
    ck_assert(now_s() - t0 < 5);
    ck_assert_uint_eq(atomic_load(&bench_proxy_stats(p)->refused), 1);
    close(fd);
    bench_proxy_stop(p);
}
END_TEST

START_TEST(stopping_the_proxy_closes_its_connections)
{
    echo e;
    echo_start(&e);
    char msg[256];
    bench_proxy *p = bench_proxy_start(e.port, 10, msg, sizeof msg);
    ck_assert_msg(p != NULL, "%s", msg);
    int fd = dial(bench_proxy_port(p));
    char c = 'q', back;
    send_all(fd, &c, 1);
    recv_all(fd, &back, 1);
    send_all(fd, &c, 1); /* still held when the proxy stops */
    double t0 = now_s();
    bench_proxy_stop(p);
    ck_assert(now_s() - t0 < 2);
    ssize_t r = recv(fd, &back, 1, 0);
    ck_assert_msg(r == 0 || (r < 0 && errno == ECONNRESET), "recv: %zd", r);
    close(fd);
    echo_stop(&e);
}
END_TEST

START_TEST(the_proxy_listens_on_loopback_only)
{
    char msg[256];
    bench_proxy *p = bench_proxy_start(dead_port(), 0, msg, sizeof msg);
    ck_assert_msg(p != NULL, "%s", msg);
    /* bound to 127.0.0.1: reachable there, and getsockname says so */
    int fd = dial(bench_proxy_port(p));
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    ck_assert_int_eq(getpeername(fd, (struct sockaddr *)&a, &len), 0);
    ck_assert_uint_eq(ntohl(a.sin_addr.s_addr), INADDR_LOOPBACK);
    close(fd);
    bench_proxy_stop(p);
}
END_TEST

/* ---- The program ------------------------------------------------------- */

static const char *program(void)
{
    const char *p = getenv("IDPRIME_DELAYPROXY");
    ck_assert_msg(p != NULL && *p, "set IDPRIME_DELAYPROXY to idprime-delayproxy");
    return p;
}

/* Starts the program with argv; its stdout and stderr come back on pipes. */
static pid_t spawn(char *const argv[], int *out, int *err)
{
    int po[2], pe[2];
    ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    *out = po[0];
    *err = pe[0];
    return pid;
}

/* Reads what fd gives within 10 s, up to EOF or a newline (line = 1). */
static void read_text(int fd, char *buf, size_t len, int line)
{
    size_t have = 0;
    double deadline = now_s() + IO_TIMEOUT_S;
    while (have + 1 < len && now_s() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, buf + have, 1);
        if (r <= 0)
            break;
        have++;
        if (line && buf[have - 1] == '\n')
            break;
    }
    buf[have] = '\0';
}

/* Waits up to 10 s for pid; returns its exit code, or -1 (then killed). */
static int wait_exit(pid_t pid)
{
    double deadline = now_s() + IO_TIMEOUT_S;
    int status;
    while (now_s() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

START_TEST(program_prints_its_port_forwards_and_stops_on_sigterm)
{
    echo e;
    echo_start(&e);
    char target[16];
    snprintf(target, sizeof target, "%d", e.port);
    char *argv[] = {(char *)program(), "--seconds", "60", "0", target, "20", NULL};
    int out, err;
    pid_t pid = spawn(argv, &out, &err);
    char line[64];
    read_text(out, line, sizeof line, 1);
    int port = atoi(line);
    ck_assert_msg(port > 0 && port < 65536, "printed '%s'", line);
    int fd = dial(port);
    char msg[] = "hello through the proxy", back[sizeof msg];
    double t0 = now_s();
    send_all(fd, msg, sizeof msg);
    recv_all(fd, back, sizeof back);
    ck_assert(now_s() - t0 >= 0.020);
    ck_assert_str_eq(back, msg);
    close(fd);
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid), 0);
    close(out);
    close(err);
    echo_stop(&e);
}
END_TEST

START_TEST(program_stops_by_itself_after_its_seconds)
{
    char target[16];
    snprintf(target, sizeof target, "%d", dead_port());
    char *argv[] = {(char *)program(), "--seconds", "1", "0", target, "0", NULL};
    int out, err;
    double t0 = now_s();
    pid_t pid = spawn(argv, &out, &err);
    ck_assert_int_eq(wait_exit(pid), 0);
    ck_assert(now_s() - t0 >= 0.9);
    close(out);
    close(err);
}
END_TEST

/* Each bad command line: exit 2, and stderr names the fault. */
START_TEST(program_refuses_bad_arguments)
{
    static const struct {
        const char *args[6];
        const char *says;
    } cases[] = {
        {{"x", "1", "10"}, "PORT 'x': expected a whole number in 0..65535"},
        {{"0", "0", "10"}, "TARGET_PORT '0': expected a whole number in 1..65535"},
        {{"0", "70000", "10"}, "TARGET_PORT '70000'"},
        {{"0", "1", "-5"}, "RTT_MS '-5': expected a whole number in 0..60000"},
        {{"0", "1"}, "expected PORT TARGET_PORT RTT_MS, got 2 arguments"},
        {{"--seconds", "0", "0", "1", "1"}, "--seconds '0': expected a whole number in 1..86400"},
        {{"--seconds"}, "--seconds needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[8] = {(char *)program()};
        int n = 1;
        for (int k = 0; k < 6 && cases[i].args[k] != NULL; k++)
            argv[n++] = (char *)cases[i].args[k];
        argv[n] = NULL;
        int out, err;
        pid_t pid = spawn(argv, &out, &err);
        char text[2048];
        read_text(err, text, sizeof text, 0);
        ck_assert_msg(wait_exit(pid) == 2, "case %zu: exit code not 2", i);
        ck_assert_msg(strstr(text, cases[i].says) != NULL,
                      "case %zu: stderr '%s' lacks '%s'", i, text, cases[i].says);
        close(out);
        close(err);
    }
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("delayproxy");
    TCase *lib = tcase_create("proxy");
    tcase_set_timeout(lib, 60);
    tcase_add_test(lib, bytes_identical_and_in_order_both_ways);
    tcase_add_test(lib, a_round_trip_takes_the_asked_time_half_each_way);
    tcase_add_test(lib, concurrent_connections_each_get_their_own_bytes_at_once);
    tcase_add_test(lib, an_eof_follows_the_data);
    tcase_add_test(lib, a_target_that_is_down_closes_the_connection);
    tcase_add_test(lib, stopping_the_proxy_closes_its_connections);
    tcase_add_test(lib, the_proxy_listens_on_loopback_only);
    suite_add_tcase(s, lib);
    TCase *prog = tcase_create("program");
    tcase_set_timeout(prog, 60);
    tcase_add_test(prog, program_prints_its_port_forwards_and_stops_on_sigterm);
    tcase_add_test(prog, program_stops_by_itself_after_its_seconds);
    tcase_add_test(prog, program_refuses_bad_arguments);
    suite_add_tcase(s, prog);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
