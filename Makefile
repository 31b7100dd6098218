# wemasy — build, test and demo on Debian 12.
#
#   make            build wemasy.core for Lua 5.4 and for LuaJIT (OpenResty's ABI)
#   make test       install missing Debian packages, lint, build, run every spec on both
#   make demo       start the sandbox and run examples/quickstart.lua against it
#   make sandbox    run the sandbox in the foreground (Ctrl-C stops it)
#   make lint       luacheck, cppcheck and a warnings-as-errors C build
#   make rock       `luarocks make` both rocks into a temporary tree and require them from there
#
# The benchmarks' rules are in bench/bench.mk, the fuzzers' in fuzz/fuzz.mk.

# ------------------------------------------------------------------ the machine

# Every Debian package a target needs, a line per purpose: the build; the specs,
# the sandbox and the linters; the CLI and its REPL; the benchmarks; fuzzing.
# `make deps` installs the missing ones and runs no apt-get when none is.
DEB_PACKAGES := gcc make pkg-config lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev lua-cjson \
                  libcurl4-openssl-dev ca-certificates luarocks \
                lua-busted nginx-light libnginx-mod-http-lua lua-socket lua-sec openssl \
                  lua-check cppcheck valgrind tmux \
                lua-argparse lua-readline \
                lua-curl wrk \
                clang libclang-rt-14-dev \
                redis-server libhiredis-dev

# Expanded when used (not when read), so after `make deps` has installed gcc.
MULTIARCH     = $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine 2>/dev/null)
# Debian keeps curl's headers under a multiarch directory; luarocks needs to be told.
CURL_INCDIR  ?= /usr/include/$(MULTIARCH)

# ------------------------------------------------------------------ Lua, per ABI

# One source, two ABIs: build/5.4 for Lua 5.4, build/jit for LuaJIT 2.1.
LUA54_INC    ?= /usr/include/lua5.4
LUAJIT_INC   ?= /usr/include/luajit-2.1
LUA_INC_5.4   = $(LUA54_INC)
LUA_INC_jit   = $(LUAJIT_INC)
BUILD        ?= build
SO54         := $(BUILD)/5.4/wemasy/core.so
SOJIT        := $(BUILD)/jit/wemasy/core.so

# The working tree as a Lua installation: the modules from lua/ and sandbox/,
# wemasy.core from build/<abi>/.  `$(LUA54) script.lua` runs a script against it.
LUA_PATH_DEV  = $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/sandbox/?.lua;$(CURDIR)/sandbox/?/init.lua;;
lua_env       = LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/$(BUILD)/$(1)/?.so;;'
LUA54         = $(call lua_env,5.4) lua5.4
LUAJIT        = $(call lua_env,jit) luajit
export WEMASY_SRC := $(CURDIR)

# ------------------------------------------------------------------ wemasy.core

# The version is the rockspec's WEMASY_VERSION define, written there only.
VERSION      := $(shell sed -n 's/.*WEMASY_VERSION="\([^"]*\)".*/\1/p' wemasy-scm-1.rockspec)
CC           ?= gcc
OPTFLAGS     ?= -O2 -g
WARNFLAGS    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
# The tree's build is the test build (csrc/tests.h): with core._debug_* and the
# counters the specs read, for everything run from the tree (specs, memory
# checks, benches, demos).  The release is the rock, which never defines it;
# `make build TESTS_DEFINE= BUILD=build/release` builds one here.
TESTS_DEFINE ?= -DWEMASY_TESTS
CFLAGS_ALL    = $(OPTFLAGS) -std=gnu99 -fPIC $(WARNFLAGS) $(EXTRA_CFLAGS) \
                -DWEMASY_VERSION='"$(VERSION)"' $(TESTS_DEFINE) -I$(CURL_INCDIR)
LDFLAGS_ALL   = -shared $(EXTRA_LDFLAGS)
# hiredis: the Redis store (csrc/limiter_redis.c); m: its floor().
LIBS          = -lcurl -lhiredis -lpthread -lrt -lm

# Every C file in csrc/ (spec/tools/rockspec_spec.lua holds the rockspec's list to it).
CSRC         := $(wildcard csrc/*.c)
CHDR         := $(wildcard csrc/*.h)
# The limiter's stores and what they use, for the C programs that link them
# without Lua (bench/bench.mk, fuzz/fuzz.mk).
LIMITER_SRC  := csrc/limiter.c csrc/limiter_shm.c csrc/window.c csrc/breaker.c csrc/url.c

.PHONY: all build lint lint-c lint-lua test test-54 test-jit demo sandbox deps rock clean

all build: $(SO54) $(SOJIT)

# build/<abi>/wemasy/core.so, the ABI's headers from LUA_INC_<abi>.
$(BUILD)/%/wemasy/core.so: $(CSRC) $(CHDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(LUA_INC_$*) $(LDFLAGS_ALL) -o $@ $(CSRC) $(LIBS)

deps:
	@./.ci/install-deps $(DEB_PACKAGES)

clean:
	rm -rf $(BUILD) luacov.*.out

# ------------------------------------------------------------------ lint, specs, rocks

lint: lint-lua lint-c

lint-lua:
	luacheck --quiet lua sandbox spec examples bin fuzz tools .ci

# Both flavours warning-free: the test build and the release (no WEMASY_TESTS).
lint-c:
	$(MAKE) --no-print-directory -B BUILD=$(BUILD)/lint EXTRA_CFLAGS=-Werror build
	$(MAKE) --no-print-directory -B BUILD=$(BUILD)/lint-release TESTS_DEFINE= EXTRA_CFLAGS=-Werror build
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	  --inline-suppr --std=c99 -I$(LUA54_INC) -Icsrc --suppress=missingIncludeSystem \
	  --suppress=toomanyconfigs csrc

# `make test` is what CI runs: every spec on Lua 5.4 and on LuaJIT.
test: deps lint build rock
	@./spec/run $(SO54) $(SOJIT)

test-54: build
	@./spec/run $(SO54)

test-jit: build
	@./spec/run $(SOJIT)

# Both rocks (wemasy, then wemasy-sandbox) and the main one alone, installed with
# Debian's luarocks into throw-away trees and loaded from there (.ci/check-rock).
rock:
	@./.ci/check-rock $(CURL_INCDIR)

# Memory safety: every spec under valgrind (Lua 5.4) and against an
# ASan+UBSan build of wemasy.core (both ABIs).  CI runs both.
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --show-leak-kinds=definite --suppressions=$(CURDIR)/spec/valgrind.supp
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: check-memory check-valgrind check-asan
check-memory: check-valgrind check-asan

check-valgrind: build
	@SPEC_WRAPPER='$(VALGRIND)' WEMASY_UNDER_VALGRIND=1 ./spec/run $(SO54)

check-asan: build
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/asan OPTFLAGS='-O1 -g' \
	  EXTRA_CFLAGS='$(SANITIZE)' EXTRA_LDFLAGS='-fsanitize=address,undefined' build
	@SPEC_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:verify_asan_link_order=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ./spec/run $(BUILD)/asan/5.4/wemasy/core.so $(BUILD)/asan/jit/wemasy/core.so

# libcurl before 8.1.0 (Debian 12's 7.88.1) uses freed memory on a folded first
# header line (README "Known issues"): the plain-libcurl reproducer, under valgrind.
REPRO_FOLD := $(BUILD)/tools/curl_fold_uaf
.PHONY: repro-curl-fold
repro-curl-fold: $(REPRO_FOLD)
	valgrind --quiet --error-exitcode=99 $(REPRO_FOLD)

$(REPRO_FOLD): tools/curl_fold_uaf.c Makefile
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -std=gnu99 $(WARNFLAGS) -I$(CURL_INCDIR) -o $@ tools/curl_fold_uaf.c -lcurl -lpthread

# types/wemasy.lua (LuaLS) and docs/reference.md from the endpoint table and
# tools/templates/; spec/tools/generated_spec.lua fails when they are stale.
.PHONY: types docs
types: build
	@$(LUA54) tools/gen.lua types

docs: build
	@$(LUA54) tools/gen.lua docs

# ------------------------------------------------------------------ for people

demo: deps build
	@$(LUA54) examples/quickstart.lua

sandbox: deps build
	@$(LUA54) bin/wemasy-sandbox

# A Lua prompt with a client on a fresh sandbox (README "Command line and REPL").
.PHONY: repl
repl: deps build
	@bin/wemasy repl --sandbox

# The automation examples against a sandbox each starts itself (README "Automation examples").
.PHONY: examples example-sync example-export example-vies
examples: example-sync example-export example-vies

# Sync the paid orders of the sample day: stops after 2, then resumes from the state file.
example-sync: deps build
	@rm -f $(BUILD)/example-sync.state
	@$(LUA54) examples/sync_paid_orders.lua --sandbox --state $(BUILD)/example-sync.state --stop-after 2 \
	  examples/data/orders-of-the-day.txt || true
	@$(LUA54) examples/sync_paid_orders.lua --sandbox --state $(BUILD)/example-sync.state \
	  examples/data/orders-of-the-day.txt

example-export: deps build
	@$(LUA54) examples/export_orders_csv.lua --sandbox examples/data/orders-of-the-day.txt

example-vies: deps build
	@$(LUA54) examples/vies_check.lua --sandbox examples/data/vies-orders.csv

# OpenResty (examples/openresty): nginx runs LuaJIT, so it loads build/jit.
# The sandbox, the example storefront on nginx in front of it, a walk through its pages.
.PHONY: openresty-demo
openresty-demo: deps build
	@$(LUAJIT) examples/openresty/demo.lua

include bench/bench.mk fuzz/fuzz.mk
