/*
 * sandbox.h - a Lua state for untrusted config scripts: safe libraries
 * only, a memory cap, an instruction cap per protected call, and errors
 * that name FILE:LINE.
 */
#ifndef IDP_SANDBOX_H
#define IDP_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "idprime/idprime.h"

#define SB_HIDDEN __attribute__((visibility("hidden")))

/* A VM instruction takes a few ns (tens under sanitizers); CPU time beyond
 * this per instruction is charged as more instructions. */
#define SB_NS_PER_INSTRUCTION 250

typedef struct sandbox {
    lua_State *L;
    const char *path;      /* the script, for messages */
    size_t used, limit;    /* heap bytes in use, the cap */
    int mem_hit;           /* an allocation was refused in this call */
    int mem_line;          /* the line running when it was */
    int64_t budget;        /* instructions left in this call */
    uint64_t instructions; /* the call's cap, for messages */
    int exhausted;         /* the budget ran out in this call */
    int stop_line;         /* the line running when it did */
    int line;              /* the script line last entered */
    uint64_t cpu_mark;     /* thread CPU time (ns) at the last count */
    const char *why;       /* what ran out of budget, when not the VM */
    int closing;           /* lua_close is running: no more warnings */
    idp_log_fn log;
    void *log_ud;
    char warn[256];        /* a warning being assembled from pieces */
    size_t warnlen;
} sandbox;

/*
 * Creates the state: base (without load, loadfile, dofile,
 * collectgarbage), string (without dump), table, math, utf8, coroutine;
 * print and warn go to the log; io, os, package, require, debug, load,
 * dofile, loadfile and string.dump raise a clear error when touched; the
 * metatables of strings, of _G and of the string library are protected.
 * `path` must outlive the sandbox. Returns IDP_OK or fills err.
 */
SB_HIDDEN int sandbox_open(sandbox *sb, const char *path, size_t max_memory,
                           idp_log_fn log, void *log_ud, idp_error *err);

/* Closes the state; finalizers left by the script get no instructions. */
SB_HIDDEN void sandbox_close(sandbox *sb);

/*
 * Calls fn(ud) in protected mode with at most `instructions` VM
 * instructions. Work a single instruction does in C counts too: every
 * SB_NS_PER_INSTRUCTION of CPU time is one instruction (so comparing or
 * joining strings of megabytes in a loop is capped like any loop), and a
 * library call that could outrun what is left (a string pattern that
 * backtracks, table.move over a huge range) is refused before it starts.
 * Returns 0, or -1 with msg filled ("FILE:LINE: ..."): a Lua error, the
 * instruction cap, or the memory cap (even if the script caught the
 * error). The stack is left empty.
 */
SB_HIDDEN int sandbox_call(sandbox *sb, lua_CFunction fn, void *ud,
                           uint64_t instructions, char *msg, size_t len);

/* Logs "FILE: text" at `level` through the sandbox's log callback. */
SB_HIDDEN void sandbox_log(sandbox *sb, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
