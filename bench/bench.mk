# The benchmarks (bench/README.md), included by the Makefile: not part of `make test`.
# Each writes its table to bench/results/ (the command that made it included).

BENCH_DIR := $(BUILD)/bench
# More rounds or other sizes for bench and bench-batch, e.g.
# make bench-batch BENCH_ARGS='--rounds 25' (the result file names them).
BENCH_ARGS ?=
BENCH_ARGS_NOTE := $(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)")

.PHONY: bench bench-batch bench-ratelimit bench-limiter bench-openresty bench-redis

# Client CPU and wall time per call: libcurl alone, hand-rolled lua-curl and
# socket.http calls, wemasy on both Lua; batch against curl's multi; RSS over
# 100,000 calls; the sandbox's headroom (a few minutes).
bench: deps $(SO54) $(SOJIT) $(BENCH_DIR)/speed_easy $(BENCH_DIR)/curl_multi
	@mkdir -p bench/results
	@BENCH_COMMAND='make bench$(BENCH_ARGS_NOTE)' $(LUA54) bench/speed.lua --build $(CURDIR)/$(BUILD) \
	  --out bench/results/speed.txt $(BENCH_ARGS)

# client:batch (Lua 5.4 and LuaJIT) against plain C on curl's multi interface.
# Needs wrk for the sandbox's ceiling (Debian package `wrk`; skipped if absent).
bench-batch: $(SO54) $(SOJIT) $(BENCH_DIR)/curl_multi
	@mkdir -p bench/results
	@BENCH_COMMAND='make bench-batch$(BENCH_ARGS_NOTE)' $(LUA54) bench/batch.lua \
	  --curl-multi $(BENCH_DIR)/curl_multi --build $(CURDIR)/$(BUILD) --out bench/results/batch.txt $(BENCH_ARGS)

# The limiter against the sandbox's throttle: 4 processes on one token, shared
# and unshared (about a minute; BENCH_DURATION=30 seconds per row).
bench-ratelimit: $(SO54)
	@mkdir -p bench/results
	@BENCH_COMMAND='make bench-ratelimit' $(LUA54) bench/ratelimit.lua --duration $${BENCH_DURATION:-30} \
	  --out bench/results/ratelimit.txt

# The Redis store (issue 16): hosts with a private /dev/shm (unshare) on one
# Redis against the sandbox's throttle; acquire latency against the shm
# store, round trips, fallback and rejoin, the interactive wait beside a
# background job (about three minutes; BENCH_DURATION=20 seconds per row).
bench-redis: $(SO54) $(BENCH_DIR)/redis_acquire
	@mkdir -p bench/results
	@BENCH_COMMAND='make bench-redis' $(LUA54) bench/redis.lua --duration $${BENCH_DURATION:-20} \
	  --acquire $(BENCH_DIR)/redis_acquire --out bench/results/redis.txt

# Cost of one uncontended limiter acquire, both stores (pure C, no Lua).
bench-limiter: $(BENCH_DIR)/limiter_acquire
	@$(BENCH_DIR)/limiter_acquire

# On one nginx worker: order pages/s, p50/p99 and worker CPU per page, wemasy.ngx against
# a hand-written cosocket client (~80 s); then probe latency while API calls take 500 ms,
# wemasy.ngx against the blocking client (~30 s).  E.g. BENCH_ARGS='--rounds 5 --conns 1,16'.
bench-openresty: build
	@mkdir -p bench/results
	@BENCH_COMMAND='make bench-openresty$(BENCH_ARGS_NOTE)' $(LUAJIT) bench/openresty/speed.lua \
	  --out bench/results/openresty.txt $(BENCH_ARGS)
	@$(LUAJIT) bench/openresty/latency.lua --append bench/results/openresty.txt

# The C programs: libcurl alone, as the yardstick, and the limiter without Lua.
BENCH_C_FLAGS = $(OPTFLAGS) -std=gnu99 $(WARNFLAGS) $(EXTRA_CFLAGS)

$(BENCH_DIR)/%: bench/%.c bench/common.c bench/common.h bench/bench.mk Makefile
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_C_FLAGS) -I$(CURL_INCDIR) -o $@ $< bench/common.c -lcurl

$(BENCH_DIR)/redis_acquire: bench/redis_acquire.c $(LIMITER_SRC) csrc/limiter_redis.c $(CHDR) bench/bench.mk Makefile
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_C_FLAGS) -Icsrc -o $@ $< $(LIMITER_SRC) csrc/limiter_redis.c -lhiredis -lpthread -lrt -lm

$(BENCH_DIR)/limiter_acquire: bench/limiter_acquire.c $(LIMITER_SRC) $(CHDR) bench/bench.mk Makefile
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_C_FLAGS) -Icsrc -o $@ $< $(LIMITER_SRC) -lpthread -lrt -lm
