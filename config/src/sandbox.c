/*
 * sandbox.c - the Lua state config scripts run in: the safe libraries
 * only, every way out (io, os, package, require, debug, load, loadfile,
 * dofile, string.dump) refused by name, protected metatables, a heap cap
 * enforced by the allocator and an instruction cap enforced by a count
 * hook that keeps raising once the budget is gone, so a script that
 * catches the error with pcall still cannot run on.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "sandbox.h"

/* The count hook runs every STEP instructions; the line hook keeps
 * sb->line current for messages (memory errors carry no line of their
 * own). */
#define STEP 1000
#define MASK (LUA_MASKCOUNT | LUA_MASKLINE)

static const char sandbox_rules[] =
    "config scripts have no io, os, package, require, load, loadfile, "
    "dofile, debug or string.dump";

/* Globals that lead out of the sandbox: touching one is an error that
 * says so, instead of "attempt to index a nil value". */
static const char *const forbidden[] = {
    "io", "os", "package", "require", "debug", "load", "loadfile",
    "dofile", "loadstring", "collectgarbage", "module", "string.dump", NULL
};

static sandbox *of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

static void *refused(sandbox *sb)
{
    if (!sb->mem_hit)
        sb->mem_line = sb->line;
    sb->mem_hit = 1;
    return NULL;
}

/* The heap cap: growing past `limit` fails as if memory ran out, which
 * Lua turns into a memory error. Shrinking never fails (Lua relies on
 * it). */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sandbox *sb = ud;
    size_t old = ptr != NULL ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > sb->limit - sb->used)
        return refused(sb);
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return nsize > old ? refused(sb) : NULL;
    sb->used = sb->used - old + nsize;
    return p;
}

/* The CPU time of the calling thread, in ns (0 if unknown). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Takes `cost` instructions off the budget, never below 0. */
static void spend(sandbox *sb, int64_t cost)
{
    sb->budget = cost >= sb->budget ? 0 : sb->budget - cost;
}

static void hook(lua_State *L, lua_Debug *ar);

/* The budget is gone: raises, and makes every further instruction of this
 * thread raise again, so a pcall in the script cannot run on. */
static int exhaust(lua_State *L, sandbox *sb)
{
    if (!sb->exhausted)
        sb->stop_line = sb->line;
    sb->exhausted = 1;
    sb->budget = 0;
    lua_sethook(L, hook, MASK, 1);
    lua_pushfstring(L, "%s:%d: instruction limit exceeded", sb->path,
                    sb->stop_line);
    return lua_error(L);
}

static void hook(lua_State *L, lua_Debug *ar)
{
    sandbox *sb = of(L);
    if (ar->event == LUA_HOOKLINE) {
        sb->line = ar->currentline;
        return;
    }
    if (ar->event != LUA_HOOKCOUNT)
        return;
    int step = lua_gethookcount(L);
    /* instructions that ran long in C cost their CPU time */
    int64_t cost = step;
    uint64_t now = cpu_ns();
    if (now > sb->cpu_mark) {
        uint64_t t = (now - sb->cpu_mark) / SB_NS_PER_INSTRUCTION;
        if (t > (uint64_t)cost)
            cost = t > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)t;
    }
    sb->cpu_mark = now;
    spend(sb, cost);
    if (sb->budget > 0 && !sb->exhausted) {
        /* a coroutine may still carry the step-1 hook of an earlier call */
        if (step != STEP)
            lua_sethook(L, hook, MASK, STEP);
        return;
    }
    exhaust(L, sb);
}

/* ---- Library calls that a single instruction could make endless --------
 *
 * The count hook runs between instructions, never inside a C function, so
 * a call that runs long on its own is judged before it starts: refused
 * (as the instruction cap) when it could take more steps than the call
 * has left. */

/* Refuses the call when `steps` is more than the budget left. */
static void afford(lua_State *L, double steps, const char *what)
{
    sandbox *sb = of(L);
    if (steps < (double)sb->budget)
        return;
    sb->why = what;
    exhaust(L, sb);
}

/* Lua's pattern classes (lstrlib.c match_class): %a, %d, ... */
static int class_has(int c, int cl)
{
    int res;
    switch (tolower(cl)) {
    case 'a': res = isalpha(c); break;
    case 'c': res = iscntrl(c); break;
    case 'd': res = isdigit(c); break;
    case 'g': res = isgraph(c); break;
    case 'l': res = islower(c); break;
    case 'p': res = ispunct(c); break;
    case 's': res = isspace(c); break;
    case 'u': res = isupper(c); break;
    case 'w': res = isalnum(c); break;
    case 'x': res = isxdigit(c); break;
    default: return cl == c;
    }
    return isupper(cl) ? !res : res;
}

/* [set] from p ('[') to ec (']'), as matchbracketclass. */
static int set_has(int c, const char *p, const char *ec)
{
    int sig = 1;
    if (p[1] == '^') {
        sig = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == '%') {
            if (++p < ec && class_has(c, (unsigned char)*p))
                return sig;
        } else if (p[1] == '-' && p + 2 < ec) {
            p += 2;
            if ((unsigned char)p[-2] <= c && c <= (unsigned char)*p)
                return sig;
        } else if ((unsigned char)*p == c) {
            return sig;
        }
    }
    return !sig;
}

/* The end of the single-character class at p (classEnd); pe when the
 * pattern is malformed (Lua then raises an error of its own). */
static const char *class_end(const char *p, const char *pe)
{
    char c = *p++;
    if (c == '%')
        return p < pe ? p + 1 : pe;
    if (c == '[') {
        if (p < pe && *p == '^')
            p++;
        do {
            if (p >= pe)
                return pe;
            if (*p++ == '%' && p < pe)
                p++;
        } while (p < pe && *p != ']');
        return p < pe ? p + 1 : pe;
    }
    return p;
}

/* The longest run of subject bytes the class [p, ep) matches. */
static size_t class_run(const char *s, size_t n, const char *p, const char *ep)
{
    size_t best = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i], in;
        switch (*p) {
        case '.': in = 1; break;
        case '%': in = class_has(c, (unsigned char)p[1]); break;
        case '[': in = set_has(c, p, ep - 1); break;
        default: in = (unsigned char)*p == c;
        }
        run = in ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

/* What follows a quantifier: 0 more items (it can backtrack), 1 nothing
 * that can fail (captures only), 2 captures then a final '$' (it may try
 * each of its choices, but nothing after them branches). */
static int rest_kind(const char *p, const char *pe)
{
    for (; p < pe; p++) {
        if (*p == '$' && p + 1 == pe)
            return 2;
        if (*p != '(' && *p != ')')
            return 0;
    }
    return 1;
}

/*
 * An upper bound of the steps Lua's matcher takes for pattern [p, pe) on
 * the n subject bytes at s: (start positions) x (the product, over the
 * quantifiers that can backtrack, of the choices each has: one more than
 * the longest run of its class in the subject, 2 for '?') x (the pattern
 * walked once, plus the linear scans: %b, back references, a last
 * quantifier before a '$'). A last quantifier with nothing after it
 * succeeds at its first choice, so its scans add up to n over the call.
 * Stops early, answering `limit`, once over it.
 */
static double pattern_cost(const char *p, const char *pe, const char *s,
                           size_t n, int anchors, double limit)
{
    double starts = (double)n + 1, branches = 1, leaf = (double)(pe - p) + 1;
    double work = 0; /* what this estimate itself costs */
    if (anchors && p < pe && *p == '^') {
        starts = 1;
        p++;
    }
    while (p < pe) {
        if (starts * branches * leaf + work >= limit)
            return limit;
        char c = *p;
        if (c == '(' || c == ')' || (c == '$' && p + 1 == pe)) {
            p++;
            continue;
        }
        if (c == '%' && p + 1 < pe && p[1] == 'b') {
            leaf += (double)n + 1;
            p = pe - p > 4 ? p + 4 : pe;
            continue;
        }
        if (c == '%' && p + 1 < pe && p[1] >= '0' && p[1] <= '9') {
            leaf += (double)n + 1;
            p += 2;
            continue;
        }
        if (c == '%' && p + 1 < pe && p[1] == 'f') {
            p += 2;
            if (p < pe)
                p = class_end(p, pe);
            continue;
        }
        const char *ep = class_end(p, pe);
        if (ep >= pe || strchr("*+-?", *ep) == NULL) {
            p = ep;
            continue;
        }
        double choices = 2;
        if (*ep != '?') {
            choices = (double)class_run(s, n, p, ep) + 1;
            work += (double)n;
        }
        switch (rest_kind(ep + 1, pe)) {
        case 0: branches *= choices; break;
        case 1: work += choices; break;
        default: leaf += choices; break;
        }
        p = ep + 1;
    }
    double total = starts * branches * leaf + work;
    return total < limit ? total : limit;
}

/* 1 when the pattern has none of Lua's special characters (then find
 * compares bytes: lstrlib.c nospecials). */
static int no_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (strchr("^$*+?.([%-", p[i]) != NULL && p[i] != '\0')
            return 0;
    return 1;
}

/* Calls the original (upvalue 1) with the arguments, answers its results. */
static int call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

enum { M_FIND, M_MATCH, M_GMATCH, M_GSUB };

/* string.find, match, gmatch and gsub (upvalue 2 names which): refused
 * when the match could outrun the budget. */
static int sb_match(lua_State *L)
{
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    int kind = strcmp(name, "find") == 0     ? M_FIND
               : strcmp(name, "match") == 0  ? M_MATCH
               : strcmp(name, "gmatch") == 0 ? M_GMATCH
                                             : M_GSUB;
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = 0;
    if (kind != M_GSUB) { /* posrelatI */
        lua_Integer i = luaL_optinteger(L, 3, 1);
        if (i > 0)
            init = (size_t)i - 1;
        else if (i < 0 && (lua_Unsigned)-(i + 1) < ls)
            init = ls - (size_t)-(i + 1) - 1;
        if (init > ls)
            init = ls;
    }
    size_t n = ls - init;
    double limit = (double)of(L)->budget + 1;
    double cost;
    if (kind == M_FIND && (lua_toboolean(L, 4) || no_specials(p, lp)))
        cost = (double)n + (double)n * (double)lp / 16; /* memchr + memcmp */
    else
        cost = pattern_cost(p, p + lp, s + init, n, kind != M_GMATCH, limit);
    afford(L, cost, "a string pattern that could backtrack past it");
    return call_original(L);
}

/* string.rep: an empty piece repeated any number of times is "" at once
 * (lstrlib.c would loop n times copying nothing). */
static int sb_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0 && l == 0 && lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    return call_original(L);
}

/* table.move: one step per element moved, refused beyond the budget
 * (moving nils allocates nothing, so memory would not stop it). */
static int sb_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    if (e >= f)
        afford(L, (double)e - (double)f + 1, "table.move over that range");
    return call_original(L);
}

/* table.insert, remove and sort: loop up to #t in C, and a __len
 * metamethod can make #t anything; a config script's lists need none. */
static int sb_tablen(lua_State *L)
{
    if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
        return luaL_error(L, "table.%s on a table with a __len metamethod "
                          "is not available in a config script",
                          lua_tostring(L, lua_upvalueindex(2)));
    return call_original(L);
}

/* Replaces lib[name] (lib at the top of the stack) by fn, a closure over
 * the original and the name. */
static void wrap(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getfield(L, -1, name);
    lua_pushstring(L, name);
    lua_pushcclosure(L, fn, 2);
    lua_setfield(L, -2, name);
}

void sandbox_log(sandbox *sb, int level, const char *fmt, ...)
{
    if (sb->log == NULL)
        return;
    char text[512];
    int n = snprintf(text, sizeof text, "%s: ", sb->path);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof text)
        vsnprintf(text + n, sizeof text - (size_t)n, fmt, ap);
    va_end(ap);
    sb->log(sb->log_ud, level, text);
}

/* warn(): pieces are joined and logged as one warning; "@on"/"@off"
 * control messages are ignored (warnings are always on). */
static void sb_warn(void *ud, const char *msg, int tocont)
{
    sandbox *sb = ud;
    if (sb->closing)
        return;
    if (sb->warnlen == 0 && !tocont && msg[0] == '@')
        return;
    size_t n = strlen(msg);
    if (n > sizeof sb->warn - 1 - sb->warnlen)
        n = sizeof sb->warn - 1 - sb->warnlen;
    memcpy(sb->warn + sb->warnlen, msg, n);
    sb->warnlen += n;
    sb->warn[sb->warnlen] = '\0';
    if (!tocont) {
        sandbox_log(sb, IDP_LOG_WARN, "warning: %s", sb->warn);
        sb->warnlen = 0;
    }
}

/* print(): to the log, at info level, so it never mixes into a command's
 * output. */
static int sb_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    sandbox_log(of(L), IDP_LOG_INFO, "%s", lua_tostring(L, -1));
    return 0;
}

/* __index of _G and of the string library: a forbidden name raises an
 * error naming it (upvalue 1 is the prefix: "" or "string."). */
static int refuse_name(lua_State *L)
{
    const char *prefix = lua_tostring(L, lua_upvalueindex(1));
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    char name[64];
    snprintf(name, sizeof name, "%s%s", prefix, lua_tostring(L, 2));
    for (const char *const *f = forbidden; *f != NULL; f++)
        if (strcmp(*f, name) == 0)
            return luaL_error(L, "%s is not available in a config script "
                              "(%s)", name, sandbox_rules);
    return 0;
}

/* setmetatable() without __gc: finalizers run with hooks off (lgc.c,
 * GCTM), beyond the instruction cap, so the sandbox has none. A __gc added
 * to the metatable later does not make the object finalizable. */
static int sb_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not available in a "
                              "config script (finalizers would escape the "
                              "instruction limit)");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Any use of a protected metatable's stand-in (upvalue 1 names whose). */
static int refuse_metatable(lua_State *L)
{
    return luaL_error(L, "the metatable of %s is protected in a config "
                      "script", lua_tostring(L, lua_upvalueindex(1)));
}

/* Makes the metatable at the top of the stack protected: getmetatable()
 * answers a stand-in that raises on any use, setmetatable() refuses. */
static void protect(lua_State *L, const char *whose)
{
    lua_newtable(L);                       /* the stand-in */
    lua_createtable(L, 0, 3);              /* its metatable */
    lua_pushstring(L, whose);
    lua_pushcclosure(L, refuse_metatable, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "__metatable");
}

/* Gives the table at `idx` a protected metatable whose __index refuses
 * the forbidden names under `prefix`. */
static void guard(lua_State *L, int idx, const char *prefix, const char *whose)
{
    idx = lua_absindex(L, idx);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, prefix);
    lua_pushcclosure(L, refuse_name, 1);
    lua_setfield(L, -2, "__index");
    protect(L, whose);
    lua_setmetatable(L, idx);
}

static int setup(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_COLIBNAME, luaopen_coroutine},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8},
        {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->name != NULL; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    static const char *const drop[] = {"dofile", "loadfile", "load",
                                       "collectgarbage", NULL};
    for (const char *const *d = drop; *d != NULL; d++) {
        lua_pushnil(L);
        lua_setglobal(L, *d);
    }
    lua_pushcfunction(L, sb_print);
    lua_setglobal(L, "print");
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, sb_setmetatable, 1);
    lua_setglobal(L, "setmetatable");

    lua_getglobal(L, LUA_TABLIBNAME);
    wrap(L, "move", sb_move);
    wrap(L, "insert", sb_tablen);
    wrap(L, "remove", sb_tablen);
    wrap(L, "sort", sb_tablen);
    lua_pop(L, 1);

    /* string.dump would hand out bytecode */
    lua_getglobal(L, LUA_STRLIBNAME);
    wrap(L, "find", sb_match);
    wrap(L, "match", sb_match);
    wrap(L, "gmatch", sb_match);
    wrap(L, "gsub", sb_match);
    wrap(L, "rep", sb_rep);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    guard(L, -1, "string.", "the string library");
    lua_pop(L, 1);

    /* getmetatable("").__index is the string library: keep it out of
     * reach so it cannot be swapped for every string at once */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    protect(L, "strings");
    lua_pop(L, 2);

    lua_pushglobaltable(L);
    guard(L, -1, "", "_G");
    lua_pop(L, 1);
    return 0;
}

int sandbox_open(sandbox *sb, const char *path, size_t max_memory,
                 idp_log_fn log, void *log_ud, idp_error *err)
{
    memset(sb, 0, sizeof *sb);
    sb->path = path;
    sb->limit = max_memory;
    sb->log = log;
    sb->log_ud = log_ud;
    sb->L = lua_newstate(sb_alloc, sb);
    if (sb->L == NULL) {
        if (err != NULL) {
            err->code = IDP_ENOMEM;
            snprintf(err->msg, sizeof err->msg, "%s: cannot create a Lua "
                     "state (out of memory or memory cap too small)", path);
        }
        return IDP_ENOMEM;
    }
    lua_setwarnf(sb->L, sb_warn, sb);
    char msg[sizeof err->msg];
    if (sandbox_call(sb, setup, NULL, STEP, msg, sizeof msg) != 0) {
        if (err != NULL) {
            err->code = IDP_ENOMEM;
            snprintf(err->msg, sizeof err->msg, "%s", msg);
        }
        sandbox_close(sb);
        return IDP_ENOMEM;
    }
    return IDP_OK;
}

void sandbox_close(sandbox *sb)
{
    if (sb->L == NULL)
        return;
    /* __gc metamethods the script left run now: no instructions, and the
     * errors they raise are not worth a warning */
    sb->closing = 1;
    sb->budget = 0;
    sb->exhausted = 1;
    lua_sethook(sb->L, hook, MASK, 1);
    lua_close(sb->L);
    sb->L = NULL;
}

/* 1 when an error message starts with "SOURCE:LINE:" (error(msg, 0) and
 * errors raised from C give none). */
static int has_position(const char *m)
{
    const char *colon = strchr(m, ':');
    if (colon == NULL || colon == m || memchr(m, '\n', (size_t)(colon - m)))
        return 0;
    const char *p = colon + 1;
    while (*p >= '0' && *p <= '9')
        p++;
    return p > colon + 1 && *p == ':';
}

int sandbox_call(sandbox *sb, lua_CFunction fn, void *ud,
                 uint64_t instructions, char *msg, size_t len)
{
    lua_State *L = sb->L;
    sb->mem_hit = 0;
    sb->exhausted = 0;
    sb->why = NULL;
    sb->line = 0;
    sb->cpu_mark = cpu_ns();
    sb->instructions = instructions;
    sb->budget = instructions > (uint64_t)INT64_MAX ? INT64_MAX
                                                    : (int64_t)instructions;
    lua_sethook(L, hook, MASK, STEP);
    lua_settop(L, 0);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    int st = lua_pcall(L, 1, 0, 0);
    int rc = 0;
    if (sb->exhausted) {
        snprintf(msg, len, "%s:%d: instruction limit of %llu exceeded (%s)",
                 sb->path, sb->stop_line, (unsigned long long)instructions,
                 sb->why ? sb->why : "an endless loop?");
        rc = -1;
    } else if (sb->mem_hit) {
        snprintf(msg, len, "%s:%d: memory limit of %zu bytes exceeded",
                 sb->path, sb->mem_line, sb->limit);
        rc = -1;
    } else if (st != LUA_OK) {
        if (lua_type(L, -1) == LUA_TSTRING && has_position(lua_tostring(L, -1)))
            snprintf(msg, len, "%s", lua_tostring(L, -1));
        else if (lua_type(L, -1) == LUA_TSTRING)
            snprintf(msg, len, "%s:%d: %s", sb->path, sb->line,
                     lua_tostring(L, -1));
        else
            snprintf(msg, len, "%s:%d: error object is a %s value", sb->path,
                     sb->line, luaL_typename(L, -1));
        rc = -1;
    }
    lua_settop(L, 0);
    return rc;
}
