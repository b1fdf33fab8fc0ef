/*
 * luaopen.c - the entry point of the idprime.so Lua module: the stock
 * interpreter's require "idprime" calls luaopen_idprime.
 */
#include <lua.h>

#include "idprime/config.h"

__attribute__((visibility("default"))) int luaopen_idprime(lua_State *L);

int luaopen_idprime(lua_State *L)
{
    return idp_lua_open(L);
}
