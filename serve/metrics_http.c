/*
 * metrics_http.c - the live metrics: the engine's Prometheus text plus the
 * server's own figures (connections, commands, errors), served at /metrics
 * by libmicrohttpd on its own thread, and written at exit with --metrics.
 * The page reads only atomics and the engine's locked snapshots, never
 * the event loop's state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "internal.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

#define U(x) ((unsigned long long)atomic_load_explicit(&(x), \
                                                       memory_order_relaxed))

static void family(struct evbuffer *b, const char *name, const char *type,
                   const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

void mhttp_serve_text(srv *s, struct evbuffer *b)
{
    serve_stats *st = &s->st;
    family(b, "idprime_serve_connections", "gauge",
           "Client connections open now.");
    evbuffer_add_printf(b, "idprime_serve_connections %lld\n",
                        (long long)atomic_load_explicit(
                            &st->conns_current, memory_order_relaxed));
    family(b, "idprime_serve_connections_accepted_total", "counter",
           "Client connections accepted.");
    evbuffer_add_printf(b, "idprime_serve_connections_accepted_total %llu\n",
                        U(st->conns_total));
    family(b, "idprime_serve_connections_rejected_total", "counter",
           "Connections refused over --max-clients.");
    evbuffer_add_printf(b, "idprime_serve_connections_rejected_total %llu\n",
                        U(st->conns_rejected));
    family(b, "idprime_serve_commands_total", "counter",
           "Commands received, by command (other: unknown commands).");
    for (int i = 0; i < CMD_COUNT; i++)
        evbuffer_add_printf(b, "idprime_serve_commands_total{command=\"%s\"} "
                            "%llu\n", cmd_metric_names[i],
                            U(st->commands[i]));
    family(b, "idprime_serve_error_replies_total", "counter",
           "Error replies sent.");
    evbuffer_add_printf(b, "idprime_serve_error_replies_total %llu\n",
                        U(st->errors_reply));
    family(b, "idprime_serve_protocol_errors_total", "counter",
           "Connections closed for malformed or oversized requests.");
    evbuffer_add_printf(b, "idprime_serve_protocol_errors_total %llu\n",
                        U(st->errors_protocol));
    family(b, "idprime_serve_client_timeouts_total", "counter",
           "Connections closed by --request-timeout-ms or "
           "--idle-timeout-ms.");
    evbuffer_add_printf(b, "idprime_serve_client_timeouts_total %llu\n",
                        U(st->timeouts));
    family(b, "idprime_serve_ids_replied_total", "counter",
           "IDs handed to clients by INCR and INCRBY.");
    evbuffer_add_printf(b, "idprime_serve_ids_replied_total %llu\n",
                        U(st->ids_replied));
    family(b, "idprime_serve_forwarded_total", "counter",
           "Requests sent to the upstream Redis (--upstream).");
    evbuffer_add_printf(b, "idprime_serve_forwarded_total %llu\n",
                        U(st->forwarded));
    family(b, "idprime_serve_upstream_errors_total", "counter",
           "Upstream connections that failed or were lost.");
    evbuffer_add_printf(b, "idprime_serve_upstream_errors_total %llu\n",
                        U(st->upstream_errors));
    family(b, "idprime_serve_keys", "gauge",
           "Counters the server has served since it started.");
    evbuffer_add_printf(b, "idprime_serve_keys %llu\n", U(st->counters));
}

char *mhttp_all_text(srv *s)
{
    char *engine = idp_metrics(s->client);
    struct evbuffer *b = evbuffer_new();
    char *text = NULL;
    if (engine != NULL && b != NULL &&
        evbuffer_add(b, engine, strlen(engine)) == 0) {
        mhttp_serve_text(s, b);
        size_t n = evbuffer_get_length(b);
        if ((text = malloc(n + 1)) != NULL) {
            evbuffer_remove(b, text, n);
            text[n] = '\0';
        }
    }
    idp_free(engine);
    if (b != NULL)
        evbuffer_free(b);
    return text;
}

static mhd_result reply(struct MHD_Connection *mc, unsigned status,
                        char *body, int owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body,
        owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    mhd_result rc = MHD_queue_response(mc, status, r);
    MHD_destroy_response(r);
    return rc;
}

static mhd_result handler(void *cls, struct MHD_Connection *mc,
                          const char *url, const char *method,
                          const char *version, const char *upload_data,
                          size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    srv *s = cls;
    if (*upload_data_size != 0) { /* a body is not wanted: drop it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(mc, MHD_HTTP_METHOD_NOT_ALLOWED,
                     (char *)"only GET /metrics\n", 0);
    if (strcmp(url, "/metrics") != 0)
        return reply(mc, MHD_HTTP_NOT_FOUND,
                     (char *)"not found: the metrics are at /metrics\n", 0);
    char *text = mhttp_all_text(s);
    if (text == NULL)
        return reply(mc, MHD_HTTP_INTERNAL_SERVER_ERROR,
                     (char *)"out of memory\n", 0);
    return reply(mc, MHD_HTTP_OK, text, 1);
}

int mhttp_start(srv *s, int fd, char *err, size_t errlen)
{
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, s,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
        MHD_OPTION_END);
    if (d == NULL) {
        snprintf(err, errlen, "libmicrohttpd could not start");
        return -1;
    }
    s->http = d;
    return 0;
}

void mhttp_stop(srv *s)
{
    if (s->http != NULL) {
        MHD_stop_daemon(s->http); /* closes the listening socket */
        s->http = NULL;
    }
}
