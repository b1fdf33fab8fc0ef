/*
 * fuzz.h - what the libFuzzer targets share: cutting the input into
 * NUL-terminated strings of exactly their own size (so AddressSanitizer
 * sees a read past the end of any of them), and a check that aborts with
 * a message when an invariant does not hold.
 */
#ifndef IDP_FUZZ_H
#define IDP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant: a failure is a finding, reported as a crash. */
#define FUZZ_CHECK(cond, ...)                                           \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ",     \
                    __FILE__, __LINE__, #cond);                         \
            fprintf(stderr, __VA_ARGS__);                               \
            fputc('\n', stderr);                                        \
            abort();                                                    \
        }                                                               \
    } while (0)

/* A heap copy of [p, p+n) plus a NUL, in a block of exactly n+1 bytes. */
static inline char *fuzz_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Cuts the next line (without its '\n') off [*p, end); NULL at the end. */
static inline char *fuzz_line(const uint8_t **p, const uint8_t *end)
{
    if (*p >= end)
        return NULL;
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = fuzz_strndup(*p, n);
    *p += nl != NULL ? n + 1 : n;
    return s;
}

/* The error was filled as the library promises: the code returned, a
 * non-empty message, NUL-terminated within the buffer (fill err with
 * non-NUL bytes before the call, so that a missing message shows). */
#define FUZZ_CHECK_ERR(rc, err)                                         \
    FUZZ_CHECK((err).code == (rc) && (err).msg[0] != '\0' &&            \
               memchr((err).msg, '\0', sizeof (err).msg) != NULL,       \
               "rc %d, err.code %d", (rc), (err).code)

#endif
