# envoy-swift: `make run` and `make test` are the two commands a person types.
# Everything else here serves them.

SHELL      := /bin/bash
CC         ?= cc
BUILD      := build
CONFIG     ?= envoy-swift.yaml
LOG_LEVEL  ?= info

DEB_PKGS   := libuv1-dev libssl-dev libyaml-dev node-llhttp libcmocka-dev libnghttp2-dev pkg-config curl
BENCH_PKGS := wrk nginx-light haproxy valgrind strace libhttp-parser-dev nghttp2-client nghttp2-proxy openssl
LIBS       := -luv -lyaml -lnghttp2 -lssl -lcrypto -lpthread -ldl -lm
WARN       := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Werror=implicit-function-declaration
LLHTTP_INC := /usr/share/include/llhttp
SAN        := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
CFLAGS_REL := -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -ICHost -ICHost/include -I$(LLHTTP_INC)
CFLAGS_SAN := -std=gnu11 -O1 -g $(WARN) -D_GNU_SOURCE -ICHost -ICHost/include -I$(LLHTTP_INC) $(SAN)

HOST_SRC   := $(sort $(shell find CHost -name '*.c'))
HOST_HDR   := $(sort $(shell find CHost -name '*.h'))
SUP_SRC    := $(filter-out %_main.c,$(wildcard Tests/support/*.c))
SUP_HDR    := $(wildcard Tests/support/*.h)
TEST_SRC   := $(wildcard Tests/c/test_*.c)
TESTS      := $(patsubst Tests/c/%.c,$(BUILD)/tests/%,$(TEST_SRC))
SWIFT_SRC  := $(shell find Sources Filters -name '*.swift' -o -name '*.[ch]' 2>/dev/null) Package.swift

.PHONY: all build deps bench-deps run test test-c test-swift bench-parse bench-async bench-tls bench-crossing bench-instr bench-reload bench bench-ab bench-obs clean
all: build

# Install the Debian packages the build needs (and, for the benchmarks, theirs), only those missing.
define install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get install -y $$missing >/dev/null 2>&1 || \
	  { $$SUDO apt-get update >/dev/null && $$SUDO apt-get install -y $$missing; }; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PKGS))

bench-deps:
	$(call install_missing,$(BENCH_PKGS))

build: deps $(BUILD)/envoy-swift $(BUILD)/libswiftfilter.so $(BUILD)/es-upstream

# libnghttp2 must have the rapid-reset and CONTINUATION-flood limits (Debian backports them to 1.52): a tiny
# program that calls both must compile, link and run before anything of the host is built.
NGHTTP2_OK := $(BUILD)/nghttp2-check.ok
$(NGHTTP2_OK): scripts/nghttp2_check.c
	@mkdir -p $(@D)
	@$(CC) -o $(BUILD)/nghttp2-check $< -lnghttp2 >/dev/null 2>&1 && $(BUILD)/nghttp2-check || { \
	  echo "libnghttp2 lacks nghttp2_option_set_stream_reset_rate_limit / set_max_continuations (CVE-2023-44487 / CVE-2024-28182 fixes): install Debian's libnghttp2-dev 1.52.0-1+deb12u3 or newer" >&2; \
	  exit 1; }
	@touch $@

# llhttp 8.1 (HTTP/1 parsing), compiled from the C sources Debian's node-llhttp ships. They are not ours:
# built as objects of their own, without the project's warning flags, for the release and the sanitized host.
LLHTTP_DIR := /usr/share/llhttp
LLHTTP_C   := api.c http.c llhttp.c
LLHTTP_OBJ := $(patsubst %.c,$(BUILD)/llhttp/%.o,$(LLHTTP_C))
LLHTTP_SAN := $(patsubst %.c,$(BUILD)/asan/llhttp/%.o,$(LLHTTP_C))
$(addprefix $(LLHTTP_DIR)/,$(LLHTTP_C)):
	$(call install_missing,node-llhttp)
$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -g -I$(LLHTTP_INC) -c -o $@ $<
$(BUILD)/asan/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O1 -g -I$(LLHTTP_INC) $(SAN) -c -o $@ $<

$(BUILD)/envoy-swift: $(HOST_SRC) $(HOST_HDR) $(LLHTTP_OBJ) | $(NGHTTP2_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -o $@ $(HOST_SRC) $(LLHTTP_OBJ) $(LIBS)

# The same host under AddressSanitizer and UndefinedBehaviorSanitizer: what the C tests run. Its objects
# are compiled once; the test programs link the ones they need from an archive.
ASAN_OBJ   := $(patsubst CHost/%.c,$(BUILD)/asan/obj/%.o,$(HOST_SRC))
$(BUILD)/asan/obj/%.o: CHost/%.c $(HOST_HDR) | $(NGHTTP2_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_SAN) -c -o $@ $<

$(BUILD)/asan/libhost.a: $(filter-out $(BUILD)/asan/obj/main.o,$(ASAN_OBJ)) $(LLHTTP_SAN)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/asan/envoy-swift: $(ASAN_OBJ) $(LLHTTP_SAN)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_SAN) -o $@ $(ASAN_OBJ) $(LLHTTP_SAN) $(LIBS)

# The test upstream, also what `make run` starts behind the default config.
$(BUILD)/es-upstream: Tests/support/upstream.c Tests/support/upstream_main.c $(SUP_HDR) $(LLHTTP_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -ITests/support -o $@ Tests/support/upstream.c Tests/support/upstream_main.c $(LLHTTP_OBJ) $(LIBS)

$(BUILD)/tests/%: Tests/c/%.c $(SUP_SRC) $(SUP_HDR) $(BUILD)/asan/libhost.a $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_SAN) -ITests/support -o $@ $< $(SUP_SRC) $(BUILD)/asan/libhost.a $(LIBS) -lcmocka

# Deliberately broken filter libraries for the host's load checks, and two working C ones that
# answer every request themselves with "build a" / "build b" (which library a worker runs).
FIXTURES   := $(BUILD)/fixtures/libwrongabi.so $(BUILD)/fixtures/libmissing.so \
              $(BUILD)/fixtures/libanswer_a.so $(BUILD)/fixtures/libanswer_b.so
$(BUILD)/fixtures/libwrongabi.so: Tests/fixtures/bad_filter_lib.c CHost/include/envoy_swift_abi.h
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -DABI_VERSION=999 -o $@ $<
$(BUILD)/fixtures/libmissing.so: Tests/fixtures/bad_filter_lib.c CHost/include/envoy_swift_abi.h
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -ICHost/include -DSAME_ABI -o $@ $<
$(BUILD)/fixtures/libanswer_%.so: Tests/fixtures/answer_filter_lib.c CHost/include/envoy_swift_abi.h
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -Wall -Wextra -Werror -ICHost/include -DANSWER='"$*"' -o $@ $<

$(BUILD)/libswiftfilter.so: $(SWIFT_SRC)
	@mkdir -p $(@D)
	swift build -c release --product swiftfilter
	@# A new file renamed over the old: a running worker has the old one mapped, and rewriting it in place
	@# (plain cp) can crash it. A reload (or --watch, as in `make run`) then loads the new one.
	cp "$$(swift build -c release --show-bin-path)/libswiftfilter.so" $@.tmp && mv -f $@.tmp $@

run: build
	@./scripts/run.sh $(BUILD) $(CONFIG) $(LOG_LEVEL)

# HTTP/1 parsing alone, measured (never asserted): ns per 260-byte request head, http-parser 2.9.4 vs llhttp 8.1.
# http-parser (libhttp-parser-dev, a bench package) is linked here only: nothing else uses it.
$(BUILD)/bench-parse: bench/parse.c bench/parse_llhttp.c bench/parse.h $(LLHTTP_OBJ) | bench-deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -o $@ bench/parse.c bench/parse_llhttp.c $(LLHTTP_OBJ) -lhttp_parser

bench-parse: $(BUILD)/bench-parse
	@$(BUILD)/bench-parse

# Async filters, measured (never asserted): resume latency and req/s, sync vs async no-op filters.
bench-async: build
	@command -v wrk >/dev/null || apt-get install -y wrk
	@./bench/async_resume.sh

# TLS termination, measured (never asserted): HTTPS req/s and latency, envoy-swift vs nginx.
bench-tls: build
	@command -v wrk >/dev/null || apt-get install -y wrk
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt-get install -y nginx-light
	@./bench/tls.sh

# The Python test tools' dependencies (Tests/py/): a venv at build/venv, pinned (scripts/py-deps.sh).
# The C tests run those tools, so test-c needs them.
.PHONY: py-deps bench-h2
py-deps:
	@./scripts/py-deps.sh $(BUILD)
test-c: py-deps

# HTTP/2 front ends, measured (never asserted): h2load req/s, latency and CPU per request through nghttpx,
# nginx, HAProxy and envoy-swift (no filter, one no-op Swift filter), one worker each, h2c and TLS, in front
# of build/es-upstream. `make bench` includes it.
# What an access log (text, JSON) and a filter's own metrics cost in CPU per request, measured (never
# asserted): bench/obs.sh, 1 worker, wrk rounds alternating the setups. `make bench` includes it.
bench-obs: deps $(BUILD)/envoy-swift $(BUILD)/libswiftfilter.so
	$(call install_missing,wrk nginx-light)
	@./bench/obs.sh

bench-h2: deps $(BUILD)/envoy-swift $(BUILD)/libswiftfilter.so $(BUILD)/es-upstream
	$(call install_missing,nghttp2-client nghttp2-proxy nginx-light haproxy openssl)
	@./bench/h2.sh

# Configuration reloads under load, measured (never asserted): failed requests across 10 reloads and
# the time to the new configuration, envoy-swift (SIGHUP) vs nginx and HAProxy (master-worker),
# and the RSS of each proxy's processes.
bench-reload: build bench-deps
	@./bench/reload.sh

# One call from C into a Swift filter and back, in process (never asserted): ns per hook and per
# stream for noop, header_touch and async_noop, and instructions per hook when valgrind is there.
$(BUILD)/bench-crossing: bench/crossing.c CHost/filters/filter_resolve.c $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -o $@ bench/crossing.c CHost/filters/filter_resolve.c -ldl

bench-crossing: $(BUILD)/bench-crossing $(BUILD)/libswiftfilter.so
	@$(BUILD)/bench-crossing $(BUILD)/libswiftfilter.so

# The cost of one proxied request, counted (never asserted): user-space instructions under
# callgrind and syscalls under strace, for nginx, HAProxy and envoy-swift's setups.
bench-instr: build bench-deps
	@./bench/instr.sh

# envoy-swift vs nginx and HAProxy (issue 7), measured (never asserted): req/s, latency and CPU per
# request, idle connection memory, build/bench-crossing's, bench/instr.sh's, bench/reload.sh's and
# bench/h2.sh's output; writes BENCHMARKS.md.
bench: build bench-deps $(BUILD)/bench-crossing
	@./bench/run.sh

# This build against an older one (measured, never asserted): req/s and CPU µs per request, workers 1
# and 2, no filter and one no-op filter, rounds alternating the builds (bench/ab.sh, about 3 minutes).
# BASE is built from an older checkout, for example:
#   git worktree add /tmp/old <rev> && make -C /tmp/old build
#   make bench-ab BASE_BIN=/tmp/old/build/envoy-swift      (BASE_LIB: the libswiftfilter.so beside it)
BASE_BIN   ?=
BASE_LIB   ?= $(dir $(BASE_BIN))libswiftfilter.so
bench-ab: build bench-deps
	@[ -n "$(BASE_BIN)" ] || { echo "usage: make bench-ab BASE_BIN=/tmp/old/build/envoy-swift [BASE_LIB=...]" >&2; exit 2; }
	@./bench/ab.sh "$(BASE_BIN)" "$(BASE_LIB)" $(BUILD)/envoy-swift $(BUILD)/libswiftfilter.so

# Every C test runs against the sanitized host; any failure fails `make test`. The benchmark
# runs once, briefly, only to show it works (its numbers are never asserted).
test: deps bench-deps build $(BUILD)/asan/envoy-swift $(TESTS) $(FIXTURES) $(BUILD)/bench-crossing
	@./bench/run.sh --smoke >$(BUILD)/bench-smoke.md 2>&1 || { cat $(BUILD)/bench-smoke.md; exit 1; }
	@echo "bench smoke: every setup started and answered ($(BUILD)/bench-smoke.md)"
	@$(MAKE) --no-print-directory test-c test-swift

test-c: $(BUILD)/asan/envoy-swift $(TESTS) $(FIXTURES) $(BUILD)/libswiftfilter.so
	@ES_BIN=$(abspath $(BUILD)/asan/envoy-swift) ES_BUILD=$(abspath $(BUILD)) ./scripts/run-c-tests.sh $(TESTS)

test-swift:
	swift test

clean:
	rm -rf $(BUILD) .build
