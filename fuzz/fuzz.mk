# libFuzzer harnesses for the C that reads server data, included by the
# Makefile: fuzz/<name>_fuzz.c is a harness, built into build/fuzz/<name>
# with what FUZZ_LINK_<name> names.  `make fuzz` runs them all at once,
# FUZZ_TIME seconds each (fuzz/run); CI runs it.

FUZZ_CC       ?= clang
FUZZ_TIME     ?= 30
FUZZ_SEED     ?= 1
FUZZ_DIR      := $(BUILD)/fuzz
FUZZ_FLAGS     = -g -O1 -std=gnu99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                 $(WARNFLAGS) -Werror -DWEMASY_VERSION='"$(VERSION)"' -Icsrc -I$(LUA54_INC) -I$(CURL_INCDIR)
FUZZERS       := $(patsubst fuzz/%_fuzz.c,$(FUZZ_DIR)/%,$(wildcard fuzz/*_fuzz.c))

# Response headers (headers.c, fed line by line), the binding's table of them,
# what the limiter learns from them and the transfer's end: the core's sources.
FUZZ_LINK_headers = $(CSRC) -llua5.4 $(LIBS) -lm
# Retry-After and the retry policy.
FUZZ_LINK_retry   = csrc/retry.c -lcurl
# JSON bodies, against lua-cjson.
FUZZ_LINK_json    = csrc/json.c -llua5.4 -lm
# The shared limiter store on a segment written to between its calls (the
# test build's hooks give the harness the mapping and a short lock bound).
FUZZ_LINK_segment = -DWEMASY_TESTS $(LIMITER_SRC) -lpthread -lrt -lm

.PHONY: fuzz
fuzz: deps $(FUZZERS)
	@./fuzz/run $(FUZZ_DIR) $(FUZZ_TIME) $(FUZZ_SEED)

$(FUZZ_DIR)/%: fuzz/%_fuzz.c fuzz/fuzz.h $(CSRC) $(CHDR) fuzz/fuzz.mk Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LINK_$*)
