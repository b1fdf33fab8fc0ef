/*
 * resp.c - replies in RESP2 or RESP3, whichever the connection speaks
 * (RESP3 after HELLO 3): where RESP3 has a type of its own (null, map,
 * set, verbatim string) it is used, else the RESP2 form Redis sends.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ":123\r\n" and the like without printf: the warm INCR's reply. */
static void add_num(conn *c, char type, uint64_t v, int neg)
{
    char buf[32];
    char *p = buf + sizeof buf;
    *--p = '\n';
    *--p = '\r';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (neg)
        *--p = '-';
    *--p = type;
    evbuffer_add(c->out, p, (size_t)(buf + sizeof buf - p));
}

void resp_simple(conn *c, const char *s)
{
    size_t len = strlen(s);
    char buf[128];
    if (len + 3 > sizeof buf) {
        evbuffer_add_printf(c->out, "+%s\r\n", s);
        return;
    }
    buf[0] = '+';
    memcpy(buf + 1, s, len);
    memcpy(buf + 1 + len, "\r\n", 2);
    evbuffer_add(c->out, buf, len + 3);
}

/* Redis's form: "-CODE message", CODE being ERR unless given. CR and LF
 * become spaces, so a message (which may quote a client's bytes) stays one
 * line. */
static void error_v(conn *c, const char *code, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p != '\0'; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    evbuffer_add_printf(c->out, "-%s %s\r\n", code, msg);
    atomic_fetch_add_explicit(&c->s->st.errors_reply, 1, memory_order_relaxed);
}

void resp_error(conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(c, "ERR", fmt, ap);
    va_end(ap);
}

void resp_error_as(conn *c, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_v(c, code, fmt, ap);
    va_end(ap);
}

void resp_int(conn *c, long long v)
{
    add_num(c, ':', v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
}

void resp_uint(conn *c, uint64_t v)
{
    add_num(c, ':', v, 0);
}

void resp_bulk(conn *c, const void *p, size_t len)
{
    add_num(c, '$', len, 0);
    evbuffer_add(c->out, p, len);
    evbuffer_add(c->out, "\r\n", 2);
}

void resp_bulk_str(conn *c, const char *s)
{
    resp_bulk(c, s, strlen(s));
}

void resp_null(conn *c)
{
    evbuffer_add(c->out, c->proto == 3 ? "_\r\n" : "$-1\r\n",
                 c->proto == 3 ? 3 : 5);
}

void resp_null_array(conn *c)
{
    evbuffer_add(c->out, c->proto == 3 ? "_\r\n" : "*-1\r\n",
                 c->proto == 3 ? 3 : 5);
}

void resp_array(conn *c, size_t n)
{
    evbuffer_add_printf(c->out, "*%zu\r\n", n);
}

void resp_set(conn *c, size_t n)
{
    evbuffer_add_printf(c->out, "%c%zu\r\n", c->proto == 3 ? '~' : '*', n);
}

/* n pairs: a map in RESP3, a flat array of 2n in RESP2. */
void resp_map(conn *c, size_t n)
{
    if (c->proto == 3)
        evbuffer_add_printf(c->out, "%%%zu\r\n", n);
    else
        evbuffer_add_printf(c->out, "*%zu\r\n", 2 * n);
}

/* Text for humans (INFO): a verbatim string "txt:" in RESP3. */
void resp_verbatim(conn *c, const char *p, size_t len)
{
    if (c->proto != 3) {
        resp_bulk(c, p, len);
        return;
    }
    evbuffer_add_printf(c->out, "=%zu\r\ntxt:", len + 4);
    evbuffer_add(c->out, p, len);
    evbuffer_add(c->out, "\r\n", 2);
}

void resp_quote(char *dst, size_t dstlen, const char *p, size_t len,
                size_t max)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (dstlen == 0)
        return;
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
            if (o + 1 >= dstlen)
                break;
            dst[o++] = (char)ch;
        } else {
            if (o + 4 >= dstlen)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 15];
        }
    }
    if (len > max && o + 3 < dstlen) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}
