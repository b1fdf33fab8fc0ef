/*
 * uri.c - store URIs: scheme://[user[:password]@]host[:port][,host...]
 *         [/path][?key=value&...], percent-decoded, every error naming the
 *         part at fault. Passwords never appear in messages.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "uri.h"

/* Bump allocator over uri_parsed.strings: decoded text is never longer than
 * its source, so strlen(text) + one NUL per string is always enough. */
typedef struct arena {
    char *p;
} arena;

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes [s, s+n) into the arena. `what` names the part for errors. */
static char *decode(arena *a, const char *s, size_t n, const char *what,
                    const char *shown, idp_error *err)
{
    char *out = a->p, *w = a->p;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *w++ = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            idp_seterr(err, IDP_EINVAL,
                       "URI '%s': bad percent-encoding in the %s "
                       "(expected %%XX with two hex digits, not %%00)",
                       shown, what);
            return NULL;
        }
        *w++ = (char)(hi << 4 | lo);
        i += 2;
    }
    *w++ = '\0';
    a->p = w;
    return out;
}

char *uri_redact(const char *text, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    const char *sep = strstr(text, "://");
    const char *auth = sep ? sep + 3 : NULL;
    const char *at = NULL;
    if (auth != NULL) {
        size_t alen = strcspn(auth, "/?#");
        for (size_t i = 0; i < alen; i++)
            if (auth[i] == '@')
                at = auth + i;
    }
    const char *colon = NULL;
    if (at != NULL)
        colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL) {
        snprintf(buf, len, "%s", text);
    } else {
        snprintf(buf, len, "%.*s***%s", (int)(colon + 1 - text), text, at);
    }
    return buf;
}

static int parse_port(const char *s, size_t n, unsigned *port)
{
    if (n == 0 || n > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

/* One host[:port] or [v6][:port] element of the host list. */
static int parse_host(arena *a, const char *s, size_t n, idp_uri_host *h,
                      const char *shown, idp_error *err)
{
    const char *host = s, *port = NULL;
    size_t hostlen = n, portlen = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return idp_seterr(err, IDP_EINVAL,
                              "URI '%s': host '%.*s' has '[' without ']'",
                              shown, (int)n, s);
        host = s + 1;
        hostlen = (size_t)(close - host);
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest > 0) {
            if (close[1] != ':')
                return idp_seterr(err, IDP_EINVAL,
                                  "URI '%s': unexpected text after ']' in "
                                  "host '%.*s'", shown, (int)n, s);
            port = close + 2;
            portlen = rest - 1;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon != NULL) {
            if (memchr(colon + 1, ':', n - (size_t)(colon + 1 - s)) != NULL)
                return idp_seterr(err, IDP_EINVAL,
                                  "URI '%s': host '%.*s' has several ':' "
                                  "(write an IPv6 address as [addr]:port)",
                                  shown, (int)n, s);
            hostlen = (size_t)(colon - s);
            port = colon + 1;
            portlen = n - hostlen - 1;
        }
    }
    if (hostlen == 0)
        return idp_seterr(err, IDP_EINVAL, "URI '%s': empty host in the "
                          "host list", shown);
    h->port = 0;
    if (port != NULL && parse_port(port, portlen, &h->port) != 0)
        return idp_seterr(err, IDP_EINVAL,
                          "URI '%s': bad port '%.*s' (expected 1..65535)",
                          shown, (int)portlen, port);
    h->host = decode(a, host, hostlen, "host", shown, err);
    return h->host != NULL ? IDP_OK : IDP_EINVAL;
}

static size_t count_char(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

static int parse_query(arena *a, uri_parsed *u, const char *q,
                       const char *shown, idp_error *err)
{
    size_t qlen = strlen(q);
    u->params = calloc(count_char(q, qlen, '&') + 1, sizeof *u->params);
    if (u->params == NULL)
        return idp_seterr(err, IDP_ENOMEM, "out of memory");
    while (*q != '\0') {
        size_t n = strcspn(q, "&");
        if (n > 0) {
            const char *eq = memchr(q, '=', n);
            if (eq == NULL)
                return idp_seterr(err, IDP_EINVAL,
                                  "URI '%s': parameter '%.*s' has no value "
                                  "(expected key=value)", shown, (int)n, q);
            if (eq == q)
                return idp_seterr(err, IDP_EINVAL, "URI '%s': parameter "
                                  "'%.*s' has an empty key", shown, (int)n, q);
            uri_param *p = &u->params[u->nparams];
            p->key = decode(a, q, (size_t)(eq - q), "query", shown, err);
            if (p->key == NULL)
                return IDP_EINVAL;
            p->value = decode(a, eq + 1, n - (size_t)(eq + 1 - q), "query",
                              shown, err);
            if (p->value == NULL)
                return IDP_EINVAL;
            for (size_t i = 0; i < u->nparams; i++)
                if (strcmp(u->params[i].key, p->key) == 0)
                    return idp_seterr(err, IDP_EINVAL, "URI '%s': parameter "
                                      "'%s' is given twice", shown, p->key);
            u->nparams++;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return IDP_OK;
}

static int parse(const char *text, uri_parsed *u, const char *shown,
                 idp_error *err)
{
    size_t len = strlen(text);
    const char *sep = strstr(text, "://");
    if (sep == NULL)
        return idp_seterr(err, IDP_EINVAL, "URI '%s': expected "
                          "scheme://... (no '://' found)", shown);
    if (strchr(text, '#') != NULL)
        return idp_seterr(err, IDP_EINVAL, "URI '%s': '#' fragments are not "
                          "supported (percent-encode '#' as %%23)", shown);
    size_t slen = (size_t)(sep - text);
    if (slen == 0 || !isalpha((unsigned char)text[0]))
        return idp_seterr(err, IDP_EINVAL, "URI '%s': the scheme must start "
                          "with a letter", shown);
    for (size_t i = 0; i < slen; i++) {
        int c = (unsigned char)text[i];
        if (!isalnum(c) && c != '+' && c != '-' && c != '.')
            return idp_seterr(err, IDP_EINVAL, "URI '%s': bad character '%c' "
                              "in the scheme", shown, c);
    }

    u->strings = malloc(len * 3 + 16);
    if (u->strings == NULL)
        return idp_seterr(err, IDP_ENOMEM, "out of memory");
    arena a = {u->strings};

    char *scheme = a.p;
    for (size_t i = 0; i < slen; i++)
        *a.p++ = (char)tolower((unsigned char)text[i]);
    *a.p++ = '\0';
    u->pub.scheme = scheme;

    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?");
    char *rawauth = a.p;
    memcpy(a.p, auth, alen);
    a.p += alen;
    *a.p++ = '\0';
    u->pub.authority = rawauth;

    /* userinfo: everything before the last '@' of the authority */
    const char *hosts = auth;
    size_t hlen = alen;
    u->pub.user = u->pub.password = "";
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i;
    if (at != NULL) {
        size_t ulen = (size_t)(at - auth);
        const char *colon = memchr(auth, ':', ulen);
        size_t namelen = colon ? (size_t)(colon - auth) : ulen;
        if ((u->pub.user = decode(&a, auth, namelen, "user", shown, err)) == NULL)
            return IDP_EINVAL;
        if (colon != NULL) {
            u->pub.has_password = 1;
            u->pub.password = decode(&a, colon + 1, ulen - namelen - 1,
                                     "password", shown, err);
            if (u->pub.password == NULL)
                return IDP_EINVAL;
        }
        hosts = at + 1;
        hlen = alen - ulen - 1;
    }

    if (hlen > 0) {
        u->hosts = calloc(count_char(hosts, hlen, ',') + 1, sizeof *u->hosts);
        if (u->hosts == NULL)
            return idp_seterr(err, IDP_ENOMEM, "out of memory");
        const char *h = hosts, *end = hosts + hlen;
        for (;;) {
            const char *comma = memchr(h, ',', (size_t)(end - h));
            size_t n = comma ? (size_t)(comma - h) : (size_t)(end - h);
            int rc = parse_host(&a, h, n, &u->hosts[u->pub.nhosts], shown, err);
            if (rc != IDP_OK)
                return rc;
            u->pub.nhosts++;
            if (comma == NULL)
                break;
            h = comma + 1;
        }
    }
    u->pub.hosts = u->hosts;

    const char *path = auth + alen;
    size_t plen = strcspn(path, "?");
    if ((u->pub.path = decode(&a, path, plen, "path", shown, err)) == NULL)
        return IDP_EINVAL;
    if (path[plen] == '?')
        return parse_query(&a, u, path + plen + 1, shown, err);
    return IDP_OK;
}

int uri_parse(const char *text, uri_parsed *out, idp_error *err)
{
    memset(out, 0, sizeof *out);
    if (text == NULL || *text == '\0')
        return idp_seterr(err, IDP_EINVAL, "empty URI (expected "
                          "scheme://host/path?key=value)");
    char shown[160];
    uri_redact(text, shown, sizeof shown);
    int rc = parse(text, out, shown, err);
    if (rc != IDP_OK)
        uri_free(out);
    return rc;
}

void uri_free(uri_parsed *u)
{
    free(u->hosts);
    free(u->params);
    free(u->strings);
    memset(u, 0, sizeof *u);
}
