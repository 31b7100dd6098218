/*
 * compat.h - the one place that hides the differences between the Lua 5.1
 * API (PUC 5.1 and LuaJIT 2.1 / OpenResty) and Lua 5.4.
 *
 * Everything here is static inline or a macro: the module must not link
 * against liblua, so it may only use symbols the host interpreter exports.
 * We deliberately do not rely on LuaJIT's 5.2 extensions (luaL_setfuncs,
 * luaL_testudata, ...) so the same code also loads into PUC Lua 5.1.
 */
#ifndef WEMASY_COMPAT_H
#define WEMASY_COMPAT_H

#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>

/* 5.1 has no name for a successful pcall (LuaJIT and 5.2+ do). */
#ifndef LUA_OK
#define LUA_OK 0
#endif

#if LUA_VERSION_NUM >= 502

#define compat_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#define compat_newlib(L, l) luaL_newlib((L), (l))
#define compat_setmetatable(L, name) luaL_setmetatable((L), (name))
#define compat_rawlen(L, idx) lua_rawlen((L), (idx))
#define compat_typeerror(L, idx, tname) luaL_typeerror((L), (idx), (tname))

#else /* Lua 5.1 API */

static inline void compat_setfuncs(lua_State *L, const luaL_Reg *l)
{
    for (; l->name != NULL; l++) {
        lua_pushcfunction(L, l->func);
        lua_setfield(L, -2, l->name);
    }
}

static inline void compat_newlib(lua_State *L, const luaL_Reg *l)
{
    lua_newtable(L);
    compat_setfuncs(L, l);
}

static inline void compat_setmetatable(lua_State *L, const char *name)
{
    luaL_getmetatable(L, name);
    lua_setmetatable(L, -2);
}

#define compat_rawlen(L, idx) lua_objlen((L), (idx))

static inline int compat_typeerror(lua_State *L, int idx, const char *tname)
{
    const char *msg = lua_pushfstring(L, "%s expected, got %s", tname,
                                      luaL_typename(L, idx));
    return luaL_argerror(L, idx, msg);
}

#endif /* LUA_VERSION_NUM */

/*
 * 5.4 distinguishes integer and float subtypes, 5.1 has only doubles.  The
 * options accept "an integral number" on both, so 1e6 and 1000000 mean the
 * same everywhere.  Returns 1 and stores the value when idx holds a number
 * with no fractional part that fits in int64_t.
 */
static inline int compat_tointeger(lua_State *L, int idx, int64_t *out)
{
    lua_Number n;

    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        *out = (int64_t)lua_tointeger(L, idx);
        return 1;
    }
#endif
    n = lua_tonumber(L, idx);
    /* The bounds are exact powers of two, so the comparison is exact too;
     * NaN fails both comparisons. */
    if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0))
        return 0;
    /* In range, so the cast is defined; a round trip that changes the
     * value means there was a fraction.  (Avoids needing libm's floor.) */
    if ((lua_Number)(int64_t)n != n)
        return 0;
    *out = (int64_t)n;
    return 1;
}

#endif /* WEMASY_COMPAT_H */
