# mk/engine.mk — the inference engine (static library), the `llamagpu`
# command-line tool, and the engine's C tests.  Included by the top Makefile.
#
# Files under src/engine named *_avx2.c / *_avx512.c are compiled with those
# instruction sets enabled; the code in them runs only after runtime CPU
# detection picked it (see backend_cpu.c), so the binary runs on any x86-64.

# GPU=cuda / GPU=hip (mk/gpu.mk, included at the end) builds the engine
# with the GPU backend, into its own folder so the flavours never mix objects.
# Only the command line chooses it: a GPU variable in the environment is
# someone else's.
ifeq ($(origin GPU),environment)
GPU            :=
endif
GPU            ?=

ENGINE_CC      ?= cc
ENGINE_OPT     ?= -O2
ENGINE_CFLAGS  := -std=c11 $(ENGINE_OPT) -g -Wall -Wextra -Wno-unused-parameter \
                  -D_GNU_SOURCE -fPIC -pthread $(shell pcre2-config --cflags 2>/dev/null) \
                  -Isrc/engine $(if $(GPU),-DLG_HAVE_GPU -Ikernels) $(ENGINE_EXTRA_CFLAGS)
ENGINE_LIBS    := $(shell pcre2-config --libs8 2>/dev/null || echo -lpcre2-8) -lm -pthread

ARCH_X86       := $(filter x86_64 amd64,$(shell uname -m))
AVX2_FLAGS     := -mavx2 -mfma -mf16c
AVX512_FLAGS   := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 -mavx2 -mfma -mf16c

ENGINE_BUILD   ?= build/engine$(if $(GPU),-$(GPU))
ENGINE_SRCS    := $(wildcard src/engine/*.c)
ifeq ($(ARCH_X86),)
ENGINE_SRCS    := $(filter-out %_avx2.c %_avx512.c,$(ENGINE_SRCS))
ENGINE_CFLAGS  += -DLG_NO_X86_SIMD
endif
ENGINE_OBJS    := $(patsubst src/engine/%.c,$(ENGINE_BUILD)/%.o,$(ENGINE_SRCS))
ENGINE_LIB     := $(ENGINE_BUILD)/libllamagpu_engine.a

CLI_SRCS       := $(wildcard src/cli/*.c)
CLI_OBJS       := $(patsubst src/cli/%.c,$(ENGINE_BUILD)/cli/%.o,$(CLI_SRCS))
CLI_BIN        := bin/llamagpu
# The engine server talks to remote providers over HTTP with libcurl
# (serve_provider*.c); where its headers are missing (a bare GPU machine)
# it is built without them and refuses remote models (no_provider.c).
HAVE_CURL      := $(shell printf '\043include <curl/curl.h>\n' | $(ENGINE_CC) -E -x c - >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_CURL),1)
CLI_LIBS       := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
else
CLI_SRCS       := $(filter-out src/cli/serve_provider%.c,$(CLI_SRCS))
CLI_OBJS       := $(patsubst src/cli/%.c,$(ENGINE_BUILD)/cli/%.o,$(CLI_SRCS))
CLI_CFLAGS     := -DLG_NO_CURL
CLI_LIBS       :=
endif

TEST_SRCS      := $(wildcard tests/engine/test_*.c)
TEST_BINS      := $(patsubst tests/engine/%.c,$(ENGINE_BUILD)/tests/%,$(TEST_SRCS))
TEST_LIBS      := -lcmocka

$(ENGINE_BUILD)/%_avx2.o: src/engine/%_avx2.c src/engine/*.h
	@mkdir -p $(dir $@)
	$(ENGINE_CC) $(ENGINE_CFLAGS) $(AVX2_FLAGS) -c -o $@ $<

$(ENGINE_BUILD)/%_avx512.o: src/engine/%_avx512.c src/engine/*.h
	@mkdir -p $(dir $@)
	$(ENGINE_CC) $(ENGINE_CFLAGS) $(AVX512_FLAGS) -c -o $@ $<

$(ENGINE_BUILD)/%.o: src/engine/%.c src/engine/*.h
	@mkdir -p $(dir $@)
	$(ENGINE_CC) $(ENGINE_CFLAGS) -c -o $@ $<

$(ENGINE_LIB): $(ENGINE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(ENGINE_BUILD)/cli/%.o: src/cli/%.c src/cli/*.h src/engine/*.h
	@mkdir -p $(dir $@)
	$(ENGINE_CC) $(ENGINE_CFLAGS) $(CLI_CFLAGS) -Isrc/cli -c -o $@ $<

$(CLI_BIN): $(CLI_OBJS) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(ENGINE_CC) -o $@ $(CLI_OBJS) $(ENGINE_LIB) $(ENGINE_LIBS) $(CLI_LIBS) -ldl

$(ENGINE_BUILD)/tests/%: tests/engine/%.c tests/engine/*.h $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(ENGINE_CC) $(ENGINE_CFLAGS) -Itests/engine -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS) $(TEST_LIBS)

.PHONY: engine engine-tests check-engine
engine: $(ENGINE_LIB) $(CLI_BIN)
engine-tests: $(TEST_BINS)

# Every engine test binary; each prints its cmocka summary.
check-engine: engine engine-tests plugins
	@fail=0; for t in $(TEST_BINS); do \
	  echo "== $$t"; LLAMAGPU_BIN=$(CURDIR)/$(CLI_BIN) $$t || fail=1; done; exit $$fail

include mk/gpu.mk
include mk/plugins.mk
