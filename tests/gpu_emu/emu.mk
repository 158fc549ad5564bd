# tests/gpu_emu/emu.mk — the emulated GPU build (run by tests/gpu_emu/run.sh):
# every kernels/*.cu, rewritten by prep.py, compiled as host C++ against
# tests/gpu_emu/gpu_compat.cuh with the emulator (fibers, runtime API,
# cuBLAS) into build/gpu_emu/libllamagpu_gpu_emu.a; the kernel test
# programs; the engine with -DLG_HAVE_GPU and the llamagpu CLI linked to it;
# tests/gpu/check_kernels.  Nothing here needs CUDA or a GPU.
#   make -f tests/gpu_emu/emu.mk -j2 [all]
E          := build/gpu_emu
CXX        ?= g++
CC         ?= cc
EMU_OPT    ?= -O2
EMU_CXX    := $(CXX) -std=c++17 $(EMU_OPT) -g -Wall -Wno-unknown-pragmas -Wno-comment -fno-strict-aliasing \
              -ffp-contract=off -I$(E)/src -Isrc/engine -Itests/gpu_emu
LIBS       := $(shell pcre2-config --libs8 2>/dev/null || echo -lpcre2-8) -lstdc++ -lm -pthread

KSRCS      := $(wildcard kernels/*.cu)
KHDRS      := $(wildcard kernels/*.cuh kernels/*.h)
KOBJS      := $(patsubst kernels/%.cu,$(E)/k/%.o,$(KSRCS))
EOBJS      := $(E)/k/emu.o $(E)/k/emu_runtime.o $(E)/k/emu_blas.o
GPU_LIB    := $(E)/libllamagpu_gpu_emu.a
PREP_STAMP := $(E)/src/.stamp

# the engine as mk/gpu.mk builds it for GPU=cuda, in its own folder
# (without libcurl: remote models are not what the emulator tests)
ENG_MAKE   := $(MAKE) -f mk/standalone.mk ENGINE_BUILD=$(E)/engine ENGINE_EXTRA_CFLAGS='-DLG_HAVE_GPU -Ikernels' HAVE_CURL=0
CLI_OBJS   := $(patsubst src/cli/%.c,$(E)/engine/cli/%.o,$(filter-out src/cli/serve_provider%.c,$(wildcard src/cli/*.c)))
ENG_LIB    := $(E)/engine/libllamagpu_engine.a
CLI        := $(E)/llamagpu
TESTS      := $(E)/test_attention_emu $(E)/test_elem_emu $(E)/test_quant_emu $(E)/test_quant_host $(E)/check_kernels

all: $(TESTS) $(CLI)

$(PREP_STAMP): $(KSRCS) $(KHDRS) tests/gpu_emu/prep.py tests/gpu_emu/gpu_compat.cuh
	@mkdir -p $(E)/src
	python3 tests/gpu_emu/prep.py $(E)/src $(KSRCS) $(KHDRS)
	cp tests/gpu_emu/gpu_compat.cuh $(E)/src/
	@touch $@

$(KOBJS): $(E)/k/%.o: $(PREP_STAMP)
	@mkdir -p $(E)/k
	$(EMU_CXX) -x c++ -c $(E)/src/$*.cu -o $@

$(EOBJS): $(E)/k/%.o: tests/gpu_emu/%.cc tests/gpu_emu/gpu_compat.cuh
	@mkdir -p $(E)/k
	$(EMU_CXX) -c $< -o $@

$(GPU_LIB): $(KOBJS) $(EOBJS)
	@rm -f $@
	ar rcs $@ $^

.PHONY: engine-lib
engine-lib:
	+@$(ENG_MAKE) -s $(ENG_LIB) $(CLI_OBJS)

$(ENG_LIB): engine-lib

$(CLI): $(GPU_LIB) engine-lib
	$(CC) -o $@ $(CLI_OBJS) $(ENG_LIB) $(GPU_LIB) $(LIBS)

$(E)/test_attention_emu: tests/gpu_emu/test_attention_emu.cc $(GPU_LIB) engine-lib
	$(EMU_CXX) -o $@ $< $(ENG_LIB) $(GPU_LIB) $(LIBS)

$(E)/test_quant_emu: tests/gpu_emu/test_quant_emu.cc $(GPU_LIB) engine-lib
	$(EMU_CXX) -o $@ $< $(ENG_LIB) $(GPU_LIB) $(LIBS)

$(E)/test_elem_emu: tests/gpu_emu/test_elem_emu.c $(GPU_LIB) engine-lib
	$(CC) -std=c11 -O2 -g -Wall -D_GNU_SOURCE -Ikernels -Isrc/engine -o $@ $< $(ENG_LIB) $(GPU_LIB) $(LIBS)

# quants.cuh's index math alone, without the emulator
$(E)/test_quant_host: tests/gpu_emu/test_quant_host.cc kernels/quants.cuh engine-lib
	$(CXX) -std=c++20 -O2 -ffp-contract=off -Wall -Wextra -Wno-unknown-pragmas -Isrc/engine -Ikernels -o $@ $< $(ENG_LIB) $(LIBS)

$(E)/check_kernels: tests/gpu/check_kernels.c $(GPU_LIB) engine-lib
	$(CC) -std=c11 -O2 -g -Wall -D_GNU_SOURCE -Ikernels -Isrc/engine -Itests/gpu -o $@ $< $(ENG_LIB) $(GPU_LIB) $(LIBS)
