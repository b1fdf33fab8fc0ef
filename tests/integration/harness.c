/*
 * harness.c - real redis-server and memcached processes for the integration
 * tests, on free ports of 127.0.0.1 only.
 *
 * A server runs in its own temp directory, with its output in
 * DIR/<kind>.log (shown on stderr when it fails to start). It is started
 * with PR_SET_PDEATHSIG = SIGKILL, so it dies with the thread that started
 * it: start servers from the test's main thread (Check's forked test
 * process), never from a helper thread that exits first.
 *
 * Each kind of server (redis, memcached, and one harness_<kind>.c per
 * further store) says how to prepare its directory, its command line, how
 * to tell it answers and its URI (server_kind). A kind that refuses to run
 * as root runs as an unprivileged user when the tests run as root.
 *
 * A Redis replica (server_start_replica) is such a server started with
 * --replicaof the primary's loopback port; it is ready once its link is up
 * and the primary lists it as online.
 */
#define _GNU_SOURCE  /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "harness.h"
#include "testutil.h"

#define MAX_ARGS 64
#define READY_MS 5000      /* a server must answer within this */
#define STOP_MS 5000       /* SIGTERM, then SIGKILL after this */
#define START_ATTEMPTS 5   /* ports tried when a server cannot bind */
#define REPLICA_UP_MS 10000 /* a replica must have synced within this */

static const server_kind *find_kind(const char *name);

int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

char *harness_tmpdir(char *buf, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, len, "%s/idprime-test-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(buf) == NULL) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", buf, strerror(errno));
        buf[0] = '\0';
        return NULL;
    }
    return buf;
}

char *server_uri(const server *s, const char *query, char *buf, size_t len)
{
    const server_kind *k = find_kind(s->kind);
    if (k != NULL && k->uri != NULL)
        return k->uri(s, query, buf, len);
    snprintf(buf, len, "%s://127.0.0.1:%d%s", s->kind, s->port,
             query != NULL ? query : "");
    return buf;
}

idp_client *server_open(const server *s, const char *query,
                        const idp_options *opt)
{
    char uri[512];
    return tu_open(server_uri(s, query, uri, sizeof uri), opt);
}

/*
 * Splits `text` on spaces into argv[*argc...], copying the words into
 * `store` (at least strlen(text) + MAX_ARGS bytes). Single quotes group
 * words and '' is an empty argument. Returns -1 on an unclosed quote or too
 * many words.
 */
static int split_args(const char *text, char *store, char **argv, int *argc)
{
    const char *p = text;
    char *w = store;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return 0;
        if (*argc >= MAX_ARGS - 1)
            return -1;
        argv[(*argc)++] = w;
        while (*p != '\0' && *p != ' ') {
            if (*p == '\'') {
                const char *end = strchr(p + 1, '\'');
                if (end == NULL)
                    return -1;
                memcpy(w, p + 1, (size_t)(end - p - 1));
                w += end - p - 1;
                p = end + 1;
            } else {
                *w++ = *p++;
            }
        }
        *w++ = '\0';
    }
}

/* Prints the tail of the server's log, for a server that did not start. */
static void show_log(const server *s)
{
    char path[PATH_MAX + 32], buf[2048];
    snprintf(path, sizeof path, "%s/%s.log", s->dir, s->kind);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0,
              SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "harness: %s log (%s):\n%s\n", s->kind, path, buf);
}

/* redis-server in s->dir on s->port, without persistence. */
static int redis_command(const server *s, char **argv, char *store, size_t len)
{
    snprintf(store, len, "%d", s->port);
    char *base[] = {"redis-server", "--port", store, "--bind", "127.0.0.1",
                    "--dir", (char *)s->dir, "--save", "",
                    "--appendonly", "no", "--daemonize", "no",
                    "--logfile", ""};
    int argc = 0;
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        argv[argc++] = base[i];
    return argc;
}

static int memcached_command(const server *s, char **argv, char *store,
                             size_t len)
{
    snprintf(store, len, "%d", s->port);
    char *base[] = {"memcached", "-l", "127.0.0.1", "-p", store, "-U", "0"};
    int argc = 0;
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        argv[argc++] = base[i];
    if (geteuid() == 0) {   /* memcached refuses root without -u */
        argv[argc++] = "-u";
        argv[argc++] = "root";
    }
    return argc;
}

static int redis_answers(const server *s);
static int memcached_answers(const server *s);

static const server_kind kind_redis = {
    .name = "redis", .command = redis_command, .answers = redis_answers};
static const server_kind kind_memcached = {
    .name = "memcached", .command = memcached_command,
    .answers = memcached_answers};

/* Every kind the harness starts; a new store adds its harness_<kind>.c. */
static const server_kind *const kinds[] = {
    &kind_redis, &kind_memcached,
#ifdef HARNESS_POSTGRESQL
    &harness_kind_postgresql,
#endif
#ifdef HARNESS_MYSQL
    &harness_kind_mysql,
#endif
#ifdef HARNESS_REDIS_SENTINEL
    &harness_kind_redis_sentinel,
#endif
};

static const server_kind *find_kind(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(kinds[i]->name, name) == 0)
            return kinds[i];
    return NULL;
}

/* The user a server that refuses root runs as, when we are root. */
#define UNPRIVILEGED_USER "nobody"

int harness_server_user(const server *s, uid_t *uid, gid_t *gid)
{
    const server_kind *k = find_kind(s->kind);
    *uid = geteuid();
    *gid = getegid();
    if (k == NULL || !k->unprivileged || *uid != 0)
        return 0;
    struct passwd *pw = getpwnam(UNPRIVILEGED_USER);
    if (pw == NULL) {
        fprintf(stderr, "harness: no user '%s' to run %s as (it refuses "
                "root)\n", UNPRIVILEGED_USER, s->kind);
        return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

/*
 * Forks and execs argv in s->dir, as the server's user, its output
 * appended to DIR/<kind>.log and its parent death signal SIGKILL. Returns
 * the pid or -1.
 */
static pid_t spawn_as(const server *s, char *const argv[])
{
    uid_t uid;
    gid_t gid;
    if (harness_server_user(s, &uid, &gid) != 0)
        return -1;
    char logpath[PATH_MAX + 32];
    snprintf(logpath, sizeof logpath, "%s/%s.log", s->dir, s->kind);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDONLY);
        int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (null >= 0)
            dup2(null, 0);
        if (log >= 0) {
            dup2(log, 1);
            dup2(log, 2);
        }
        /* the test's sockets and pipes are none of the server's business */
        closefrom(3);
        if (uid != geteuid() &&
            (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) {
            fprintf(stderr, "harness: cannot become uid %d: %s\n", (int)uid,
                    strerror(errno));
            _exit(127);
        }
        /* the death signal is cleared by a change of credentials */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (chdir(s->dir) != 0)
            _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int harness_run(const server *s, char *const argv[])
{
    pid_t pid = spawn_as(s, argv);
    if (pid < 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    fprintf(stderr, "harness: %s failed (status %d)\n", argv[0], status);
    show_log(s);
    return -1;
}

/* Forks and execs the server on s->port; returns the pid or -1. */
static pid_t spawn(const server *s)
{
    char words[sizeof s->extra + MAX_ARGS];
    char kstore[PATH_MAX * 2];
    char *argv[MAX_ARGS + 32];
    const server_kind *k = find_kind(s->kind);
    int argc = k->command(s, argv, kstore, sizeof kstore);
    int nbase = argc, nextra = 0;
    if (split_args(s->extra, words, argv + nbase, &nextra) != 0) {
        fprintf(stderr, "harness: cannot split extra arguments \"%s\" "
                "(unclosed quote or more than %d words)\n", s->extra,
                MAX_ARGS - 1);
        return -1;
    }
    argv[nbase + nextra] = NULL;
    return spawn_as(s, argv);
}

int harness_alive(const server *s)
{
    /* not exited (WNOWAIT leaves it for launch to reap) */
    siginfo_t si = {0};
    return waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           si.si_pid == 0;
}

/*
 * 1 when the server on s->port answers and is ours: the process id it
 * reports (Redis "INFO server" process_id, memcached "stats" pid) is
 * s->pid, so a server of someone else that took the port is never used.
 * A Redis that wants a password answers NOAUTH: then it only has to be
 * alive. A Redis still LOADING its data is not ready yet.
 */
static int probe_answers(const server *s, int redis)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {0, 500000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const char *probe = redis ? "INFO server\r\n" : "stats\r\n";
    const char *field = redis ? "process_id:" : "STAT pid ";
    const char *end = redis ? NULL : "END\r\n";
    char buf[16384];
    size_t have = 0;
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(fd, probe, strlen(probe), MSG_NOSIGNAL) != (ssize_t)strlen(probe))
        goto out;
    for (;;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (n <= 0)
            goto out;
        have += (size_t)n;
        buf[have] = '\0';
        if (redis && buf[0] == '-') {
            ok = strncmp(buf, "-NOAUTH", 7) == 0 && harness_alive(s);
            goto out;
        }
        if (redis && buf[0] == '$' && strstr(buf, "\r\n") != NULL) {
            size_t len = strtoul(buf + 1, NULL, 10);
            if (have >= (size_t)(strstr(buf, "\r\n") - buf) + 2 + len)
                break;
        } else if (!redis && strstr(buf, end) != NULL) {
            break;
        }
        if (have + 1 >= sizeof buf)
            goto out;
    }
    const char *p = strstr(buf, field);
    ok = p != NULL && atol(p + strlen(field)) == (long)s->pid;
out:
    close(fd);
    return ok;
}

static int redis_answers(const server *s)
{
    return probe_answers(s, 1);
}

static int memcached_answers(const server *s)
{
    return probe_answers(s, 0);
}

/*
 * Runs the server on s->port and waits until it answers. Returns 0 when it
 * does; 1 when it exited first (the port was taken, say), -1 when it is
 * running but silent (then it is killed).
 */
static int launch(server *s)
{
    pid_t pid = spawn(s);
    if (pid < 0)
        return -1;
    s->pid = pid;
    long long deadline = tu_now_ms() + READY_MS;
    while (tu_now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            return 1;
        }
        if (find_kind(s->kind)->answers(s))
            return 0;
        tu_sleep_ms(20);
    }
    server_kill(s);
    return -1;
}

int server_start(server *s, const char *kind, const char *extra)
{
    memset(s, 0, sizeof *s);
    const server_kind *k = find_kind(kind);
    if (k == NULL) {
        fprintf(stderr, "harness: unknown server kind '%s'\n", kind);
        return -1;
    }
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    if (extra != NULL && strlen(extra) >= sizeof s->extra) {
        fprintf(stderr, "harness: extra arguments longer than %zu bytes\n",
                sizeof s->extra - 1);
        return -1;
    }
    snprintf(s->extra, sizeof s->extra, "%s", extra != NULL ? extra : "");
    if (harness_tmpdir(s->dir, sizeof s->dir) == NULL)
        return -1;
    uid_t uid;
    gid_t gid;
    if (harness_server_user(s, &uid, &gid) != 0 ||
        (uid != geteuid() && chown(s->dir, uid, gid) != 0)) {
        fprintf(stderr, "harness: cannot give %s to uid %d: %s\n", s->dir,
                (int)uid, strerror(errno));
        server_stop(s, 0);
        return -1;
    }
    for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
        if ((s->port = harness_free_port()) < 0) {
            fprintf(stderr, "harness: no free port on 127.0.0.1: %s\n",
                    strerror(errno));
            break;
        }
        char log[PATH_MAX + 32];
        snprintf(log, sizeof log, "%s/%s.log", s->dir, s->kind);
        unlink(log);   /* keep only the last attempt's */
        if (attempt == 0 && k->prepare != NULL && k->prepare(s) != 0)
            break;
        int rc = launch(s);
        if (rc == 0)
            return 0;
        if (rc < 0)
            break;
    }
    fprintf(stderr, "harness: %s did not start on 127.0.0.1:%d (extra "
            "\"%s\")\n", s->kind, s->port, s->extra);
    show_log(s);
    server_stop(s, 0);
    return -1;
}

int server_restart(server *s)
{
    if (s->pid != 0)
        server_stop(s, 1);
    /* The old port may still be held for a moment; keep trying it. */
    long long deadline = tu_now_ms() + READY_MS;
    do {
        int rc = launch(s);
        if (rc == 0)
            return 0;
        if (rc < 0)
            break;
        tu_sleep_ms(100);
    } while (tu_now_ms() < deadline);
    fprintf(stderr, "harness: %s did not restart on 127.0.0.1:%d\n", s->kind,
            s->port);
    show_log(s);
    return -1;
}

/* Waits up to ms for the server to exit; 1 when it did. */
static int reap(server *s, int ms)
{
    long long deadline = tu_now_ms() + ms;
    for (;;) {
        int status;
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid || (r < 0 && errno == ECHILD))
            return 1;
        if (tu_now_ms() >= deadline)
            return 0;
        tu_sleep_ms(10);
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void server_stop(server *s, int keep_dir)
{
    if (s->pid > 0) {
        kill(s->pid, SIGCONT);   /* a test may have paused it */
        kill(s->pid, SIGTERM);
        if (!reap(s, STOP_MS)) {
            kill(s->pid, SIGKILL);
            reap(s, STOP_MS);
        }
        s->pid = 0;
    }
    if (!keep_dir && s->dir[0] != '\0') {
        nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        s->dir[0] = '\0';
    }
}

int server_pause(const server *s)
{
    char path[64], line[512];
    if (kill(s->pid, SIGSTOP) != 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(path, "r");
        char *p = NULL;
        if (f != NULL) {
            if (fgets(line, sizeof line, f) != NULL)
                p = strrchr(line, ')');
            fclose(f);
        }
        if (p != NULL && (p[2] == 'T' || p[2] == 't'))
            return 0;
        tu_sleep_ms(2);
    }
    return -1;
}

void server_kill(server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        reap(s, STOP_MS);
        s->pid = 0;
    }
}

/*
 * Sends one inline command to the Redis on 127.0.0.1:port and reads its
 * reply, raw, into buf (NUL-terminated): "+OK\r\n", "-ERR ...\r\n", or
 * "$N\r\n" and the text of a bulk string. Returns 0 when a whole reply
 * came, -1 when not within half a second per read.
 */
static int redis_query(int port, const char *cmd, char *buf, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {0, 500000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char req[256];
    int n = snprintf(req, sizeof req, "%s\r\n", cmd);
    size_t have = 0;
    int rc = -1;
    if (n <= 0 || (size_t)n >= sizeof req ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    while (have + 1 < len) {
        ssize_t got = recv(fd, buf + have, len - 1 - have, 0);
        if (got <= 0)
            goto out;
        have += (size_t)got;
        buf[have] = '\0';
        const char *eol = strstr(buf, "\r\n");
        if (eol == NULL)
            continue;
        size_t head = (size_t)(eol - buf) + 2;
        if (buf[0] != '$' || have >= head + strtoul(buf + 1, NULL, 10)) {
            rc = 0;
            break;
        }
    }
out:
    close(fd);
    return rc;
}

/*
 * 1 when the replica's link to its primary is up and the primary, in turn,
 * lists it as online, so that it streams the replica its writes and the
 * replica acknowledges them (WAIT). After a diskless full sync "online"
 * comes before the streaming (see server_start_replica).
 */
static int replica_online(const server *replica)
{
    char info[8192], want[64];
    if (redis_query(replica->port, "INFO replication", info,
                    sizeof info) != 0 ||
        strstr(info, "\r\nmaster_link_status:up\r\n") == NULL)
        return 0;
    const char *mp = strstr(info, "\r\nmaster_port:");
    if (mp == NULL)
        return 0;
    int primary = atoi(mp + strlen("\r\nmaster_port:"));
    if (redis_query(primary, "INFO replication", info, sizeof info) != 0)
        return 0;
    snprintf(want, sizeof want, ",port=%d,state=online,", replica->port);
    return strstr(info, want) != NULL;
}

int server_replica_wait_up(const server *replica, int ms)
{
    long long deadline = tu_now_ms() + ms;
    do {
        if (replica_online(replica))
            return 0;
        tu_sleep_ms(20);
    } while (tu_now_ms() < deadline);
    fprintf(stderr, "harness: the redis replica on 127.0.0.1:%d is not "
            "online with its primary after %d ms\n", replica->port, ms);
    show_log(replica);
    return -1;
}

int server_start_replica(server *replica, const server *primary)
{
    if (strcmp(primary->kind, "redis") != 0 || primary->pid <= 0) {
        fprintf(stderr, "harness: a replica needs a running redis primary\n");
        memset(replica, 0, sizeof *replica);
        return -1;
    }
    /* Diskless sync (Redis 7's default) waits 5 s for more replicas
     * before a full sync, and then streams no writes to the replica, so it
     * acknowledges none (WAIT), until the replica's first periodic ACK, up
     * to a second after it shows as online. A sync through an RDB file in
     * the primary's directory streams at once. */
    char reply[256];
    if (redis_query(primary->port, "CONFIG SET repl-diskless-sync no", reply,
                    sizeof reply) != 0 ||
        strncmp(reply, "+OK", 3) != 0)
        fprintf(stderr, "harness: could not set repl-diskless-sync no on "
                "127.0.0.1:%d: the replica may take seconds to acknowledge "
                "writes\n", primary->port);
    char extra[64];
    snprintf(extra, sizeof extra, "--replicaof 127.0.0.1 %d", primary->port);
    if (server_start(replica, "redis", extra) != 0)
        return -1;
    if (server_replica_wait_up(replica, REPLICA_UP_MS) != 0) {
        server_stop(replica, 0);
        return -1;
    }
    return 0;
}
