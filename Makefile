# wemasy — build, test and demo on Debian 12.
#
#   make            build wemasy.core for Lua 5.4 and for LuaJIT (OpenResty's ABI)
#   make test       install missing Debian packages, lint, build, run every spec on both
#   make demo       start the sandbox and run examples/quickstart.lua against it
#   make sandbox    run the sandbox in the foreground (Ctrl-C stops it)
#   make lint       luacheck, cppcheck and a warnings-as-errors C build
#   make rock       `luarocks make` into a temporary tree and require it from there

VERSION      := 0.1.0
# Expanded when used (not when read), so after `make deps` has installed gcc.
MULTIARCH     = $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine 2>/dev/null)
# Debian keeps curl's headers under a multiarch directory; luarocks needs to be told.
CURL_INCDIR  ?= /usr/include/$(MULTIARCH)
LUA54_INC    ?= /usr/include/lua5.4
LUAJIT_INC   ?= /usr/include/luajit-2.1

CC           ?= gcc
OPTFLAGS     ?= -O2 -g
WARNFLAGS    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CFLAGS_ALL    = $(OPTFLAGS) -std=gnu99 -fPIC $(WARNFLAGS) $(EXTRA_CFLAGS) \
                -DWEMASY_VERSION='"$(VERSION)"' -I$(CURL_INCDIR)
LDFLAGS_ALL   = -shared $(EXTRA_LDFLAGS)
LIBS          = -lcurl -lpthread -lrt

CSRC         := $(wildcard csrc/*.c)
CHDR         := $(wildcard csrc/*.h)
BUILD        ?= build
SO54         := $(BUILD)/5.4/wemasy/core.so
SOJIT        := $(BUILD)/jit/wemasy/core.so

# Paths that make the working tree usable without installing anything.
LUA_PATH_DEV   = $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
export WEMASY_SRC := $(CURDIR)

.PHONY: all build lint lint-c lint-lua test test-54 test-jit demo sandbox deps rock clean

all build: $(SO54) $(SOJIT)

$(SO54): $(CSRC) $(CHDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(LUA54_INC) $(LDFLAGS_ALL) -o $@ $(CSRC) $(LIBS)

$(SOJIT): $(CSRC) $(CHDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(LUAJIT_INC) $(LDFLAGS_ALL) -o $@ $(CSRC) $(LIBS)

# Debian packages the build, the specs, the sandbox and the linters need.
DEB_PACKAGES := gcc make pkg-config lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev \
                lua-cjson libcurl4-openssl-dev ca-certificates lua-busted luarocks \
                nginx-light libnginx-mod-http-lua lua-check cppcheck openssl valgrind \
                lua-socket lua-sec lua-curl wrk

deps:
	@./.ci/install-deps $(DEB_PACKAGES)

lint: lint-lua lint-c

lint-lua:
	luacheck --quiet lua spec examples bin fuzz

lint-c:
	$(MAKE) --no-print-directory -B BUILD=$(BUILD)/lint EXTRA_CFLAGS=-Werror build
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

demo: deps build
	@LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/$(BUILD)/5.4/?.so;;' \
	  lua5.4 examples/quickstart.lua

sandbox: deps build
	@LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/$(BUILD)/5.4/?.so;;' \
	  lua5.4 bin/wemasy-sandbox

# Install the rock with Debian's luarocks into a throw-away tree and load it from there.
# lua-cjson comes from Debian, which luarocks does not know as a rock: --deps-mode=none.
rock:
	@./.ci/check-rock $(CURL_INCDIR)

clean:
	rm -rf $(BUILD) luacov.*.out

# Cost of one uncontended limiter acquire, both stores (not part of `make test`).
BENCH_LIMITER := $(BUILD)/bench/limiter_acquire
.PHONY: bench-limiter
bench-limiter: $(BENCH_LIMITER)
	@$(BENCH_LIMITER)

$(BENCH_LIMITER): bench/limiter_acquire.c csrc/limiter.c csrc/limiter_shm.c csrc/window.c $(CHDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPTFLAGS) -std=gnu99 $(WARNFLAGS) $(EXTRA_CFLAGS) -Icsrc -o $@ \
	  bench/limiter_acquire.c csrc/limiter.c csrc/limiter_shm.c csrc/window.c -lpthread -lrt

# OpenResty (examples/openresty): nginx runs LuaJIT, so both load build/jit.
LUA_JIT_ENV = LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/$(BUILD)/jit/?.so;;'
.PHONY: openresty-demo bench-openresty

# The sandbox, the example storefront on nginx in front of it, a walk through its pages.
openresty-demo: deps build
	@$(LUA_JIT_ENV) luajit examples/openresty/demo.lua

# Probe latency on a worker while API calls take 500 ms: wemasy.ngx vs the blocking client (~30 s).
bench-openresty: build
	@$(LUA_JIT_ENV) luajit bench/openresty/latency.lua

# The limiter against the sandbox's throttle: 4 processes on one token, shared
# and unshared (about a minute; BENCH_DURATION=30 seconds per row).  See bench/README.md.
.PHONY: bench-ratelimit
bench-ratelimit: $(SO54)
	@mkdir -p bench/results
	@BENCH_COMMAND='make bench-ratelimit' LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/$(BUILD)/5.4/?.so;;' \
	  lua5.4 bench/ratelimit.lua --duration $${BENCH_DURATION:-30} --out bench/results/ratelimit.txt

# More rounds or other sizes for bench and bench-batch, e.g.
# make bench-batch BENCH_ARGS='--rounds 25' (the result file names them).
BENCH_ARGS ?=
BENCH_ARGS_NOTE := $(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)")

# client:batch (Lua 5.4 and LuaJIT) against plain C on curl's multi interface.
# Needs wrk for the sandbox's ceiling (Debian package `wrk`; skipped if absent).
BENCH_CURL_MULTI := $(BUILD)/bench/curl_multi
.PHONY: bench-batch
bench-batch: $(SO54) $(SOJIT) $(BENCH_CURL_MULTI)
	@mkdir -p bench/results
	@BENCH_COMMAND='make bench-batch$(BENCH_ARGS_NOTE)' LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/$(BUILD)/5.4/?.so;;' \
	  lua5.4 bench/batch.lua --curl-multi $(BENCH_CURL_MULTI) --build $(CURDIR)/$(BUILD) \
	  --out bench/results/batch.txt $(BENCH_ARGS)

$(BENCH_CURL_MULTI): bench/curl_multi.c bench/common.c bench/common.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPTFLAGS) -std=gnu99 $(WARNFLAGS) $(EXTRA_CFLAGS) -I$(CURL_INCDIR) -o $@ bench/curl_multi.c bench/common.c -lcurl

# Client CPU and wall time per call: libcurl alone, hand-rolled lua-curl and
# socket.http calls, wemasy on both Lua; batch against curl's multi; RSS over
# 100,000 calls; the sandbox's headroom (a few minutes).  See bench/README.md.
BENCH_SPEED_EASY := $(BUILD)/bench/speed_easy
.PHONY: bench
bench: deps $(SO54) $(SOJIT) $(BENCH_SPEED_EASY) $(BENCH_CURL_MULTI)
	@mkdir -p bench/results
	@BENCH_COMMAND='make bench$(BENCH_ARGS_NOTE)' LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/$(BUILD)/5.4/?.so;;' \
	  lua5.4 bench/speed.lua --build $(CURDIR)/$(BUILD) --out bench/results/speed.txt $(BENCH_ARGS)

$(BENCH_SPEED_EASY): bench/speed_easy.c bench/common.c bench/common.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPTFLAGS) -std=gnu99 $(WARNFLAGS) $(EXTRA_CFLAGS) -I$(CURL_INCDIR) -o $@ bench/speed_easy.c bench/common.c -lcurl

# libFuzzer harnesses for the C that reads server data (fuzz/): response
# headers and what the limiter learns from them, Retry-After, JSON bodies
# (against lua-cjson).  All at once, FUZZ_TIME seconds each; CI runs it.
FUZZ_CC       ?= clang
FUZZ_TIME     ?= 30
FUZZ_SEED     ?= 1
FUZZ_DIR      := $(BUILD)/fuzz
FUZZ_PACKAGES := clang libclang-rt-14-dev
FUZZ_FLAGS     = -g -O1 -std=gnu99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                 $(WARNFLAGS) -Werror -DWEMASY_VERSION='"$(VERSION)"' -Icsrc -I$(LUA54_INC) -I$(CURL_INCDIR)
FUZZERS       := $(FUZZ_DIR)/headers $(FUZZ_DIR)/retry $(FUZZ_DIR)/json

.PHONY: fuzz fuzz-deps
fuzz: deps fuzz-deps $(FUZZERS)
	@./fuzz/run $(FUZZ_DIR) $(FUZZ_TIME) $(FUZZ_SEED)

fuzz-deps:
	@./.ci/install-deps $(FUZZ_PACKAGES)

$(FUZZ_DIR)/headers: fuzz/headers_fuzz.c fuzz/fuzz.h $(CSRC) $(CHDR) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ fuzz/headers_fuzz.c $(filter-out csrc/transport.c,$(CSRC)) -llua5.4 $(LIBS) -lm

$(FUZZ_DIR)/retry: fuzz/retry_fuzz.c fuzz/fuzz.h csrc/retry.c $(CHDR) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ fuzz/retry_fuzz.c csrc/retry.c -lcurl

$(FUZZ_DIR)/json: fuzz/json_fuzz.c fuzz/fuzz.h csrc/json.c $(CHDR) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ fuzz/json_fuzz.c csrc/json.c -llua5.4 -lm

# Memory safety: every spec under valgrind (Lua 5.4) and against an
# ASan+UBSan build of wemasy.core (both ABIs).  CI runs both.
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --show-leak-kinds=definite --suppressions=$(CURDIR)/spec/valgrind.supp
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: check-memory check-valgrind check-asan
check-memory: check-valgrind check-asan

check-valgrind: build
	@SPEC_WRAPPER='$(VALGRIND)' WEMASY_UNDER_VALGRIND=1 ./spec/run $(SO54)

check-asan:
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

# For people: the `wemasy` command and its REPL (README "Command line and REPL").
DEB_PACKAGES += lua-argparse
LUA_DEV_ENV = LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/$(BUILD)/5.4/?.so;;'
.PHONY: repl

# A Lua prompt with a client on a fresh sandbox.
repl: deps build
	@bin/wemasy repl --sandbox

# types/wemasy.lua (LuaLS) and docs/reference.md from the endpoint table;
# spec/generated_spec.lua fails when they are stale.
.PHONY: types docs
types:
	@$(LUA_DEV_ENV) lua5.4 tools/gen.lua types

docs: build
	@$(LUA_DEV_ENV) lua5.4 tools/gen.lua docs

# The automation examples against a sandbox each starts itself (README "Automation examples").
.PHONY: examples example-sync example-export example-vies
examples: example-sync example-export example-vies

# Sync the paid orders of the sample day: stops after 2, then resumes from the state file.
example-sync: deps build
	@rm -f $(BUILD)/example-sync.state
	@$(LUA_DEV_ENV) lua5.4 examples/sync_paid_orders.lua --sandbox --state $(BUILD)/example-sync.state --stop-after 2 \
	  examples/data/orders-of-the-day.txt || true
	@$(LUA_DEV_ENV) lua5.4 examples/sync_paid_orders.lua --sandbox --state $(BUILD)/example-sync.state \
	  examples/data/orders-of-the-day.txt

example-export: deps build
	@$(LUA_DEV_ENV) lua5.4 examples/export_orders_csv.lua --sandbox examples/data/orders-of-the-day.txt

example-vies: deps build
	@$(LUA_DEV_ENV) lua5.4 examples/vies_check.lua --sandbox examples/data/vies-orders.csv
