/*
 * json_fuzz.c - libFuzzer harness for json.c (core.json_decode), which
 * reads every response body.  Differential: json.c promises lua-cjson
 * 2.1's values, refusals and messages (decode_invalid_numbers off, whole
 * numbers below 2^53 made integers on Lua 5.4), so each input goes to both
 * in one Lua 5.4 state and the results must agree: both refuse with the same
 * message, or both give equal values (tables compared deeply; a whole
 * number may be an integer on one side and a float on the other only when
 * it is below 2^53 and json.c made it the integer).
 *
 * lua-cjson is Debian's lua-cjson module, loaded with require (package.cpath
 * is Lua's default, which includes Debian's directory).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz.h"

void json_push_decoder(lua_State *L);
static lua_State *L;
static int cjson_decode_ref = LUA_NOREF;
/* One decoder for the whole run: its key cache carries over from input to input. */
static int ours_ref = LUA_NOREF;

static void setup(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, "local c = require('cjson').new(); c.decode_invalid_numbers(false); return c.decode") != LUA_OK) {
        fprintf(stderr, "json_fuzz: cannot load lua-cjson: %s\n", lua_tostring(L, -1));
        abort();
    }
    cjson_decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    json_push_decoder(L);
    ours_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* The two values at a and b are equal (see above). */
static void compare(int a, int b, int depth)
{
    int ta = lua_type(L, a), tb = lua_type(L, b);

    CHECK_WHY(ta == tb, "types differ");
    CHECK_WHY(depth <= 1001, "deeper than lua-cjson allows");
    switch (ta) {
    case LUA_TNUMBER: {
        lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);

        CHECK_WHY(x == y || (x != x && y != y), "numbers differ");
        if (lua_isinteger(L, a) && !lua_isinteger(L, b))
            CHECK_WHY(fabs(y) < 9007199254740992.0 && y == floor(y), "an integer json.c should not have made");
        if (!lua_isinteger(L, a) && lua_isinteger(L, b))
            CHECK_WHY(0, "lua-cjson made an integer");
        if (!lua_isinteger(L, a) && !lua_isinteger(L, b) && x == 0)
            CHECK_WHY(signbit(x) == signbit(y), "-0 and 0");
        if (!lua_isinteger(L, a) && x == floor(x) && fabs(x) < 9007199254740992.0 && depth > 0)
            CHECK_WHY(0, "a whole number in a table left a float");
        break;
    }
    case LUA_TSTRING: {
        size_t la, lb;
        const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);

        CHECK_WHY(la == lb && memcmp(sa, sb, la) == 0, "strings differ");
        break;
    }
    case LUA_TBOOLEAN:
        CHECK_WHY(lua_toboolean(L, a) == lua_toboolean(L, b), "booleans differ");
        break;
    case LUA_TLIGHTUSERDATA:
        CHECK_WHY(lua_touserdata(L, a) == NULL && lua_touserdata(L, b) == NULL, "null differs");
        break;
    case LUA_TTABLE: {
        lua_Integer na = 0, nb = 0;

        lua_checkstack(L, 8);
        lua_pushnil(L);
        while (lua_next(L, a) != 0) { /* key at -2, value at -1 */
            int value = lua_gettop(L);

            na++;
            lua_pushvalue(L, value - 1);
            lua_rawget(L, b);
            CHECK_WHY(!lua_isnil(L, -1), "a key only json.c has");
            compare(value, lua_gettop(L), depth + 1);
            lua_pop(L, 2);
        }
        lua_pushnil(L);
        while (lua_next(L, b) != 0) {
            nb++;
            lua_pop(L, 1);
        }
        CHECK_WHY(na == nb, "a key only lua-cjson has");
        break;
    }
    default:
        CHECK_WHY(0, "an unexpected type");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int ours, theirs;

    if (L == NULL)
        setup();
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ours_ref);
    lua_pushlstring(L, (const char *)data, size);
    ours = lua_pcall(L, 1, 1, 0);             /* at 1 */
    lua_rawgeti(L, LUA_REGISTRYINDEX, cjson_decode_ref);
    lua_pushlstring(L, (const char *)data, size);
    theirs = lua_pcall(L, 1, 1, 0);           /* at 2 */
    if (ours != LUA_OK || theirs != LUA_OK) {
        CHECK_WHY(ours != LUA_OK && theirs != LUA_OK, ours == LUA_OK ? "json.c accepted what lua-cjson refused"
                                                                 : "json.c refused what lua-cjson accepted");
        CHECK_WHY(lua_type(L, 1) == LUA_TSTRING, "json.c raised a non-string");
        CHECK_WHY(strcmp(lua_tostring(L, 1), lua_tostring(L, 2)) == 0, "the messages differ");
    } else {
        compare(1, 2, 0);
    }
    lua_settop(L, 0);
    return 0;
}
