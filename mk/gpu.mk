# mk/gpu.mk — the GPU kernels (kernels/*.cu) as a static library, linked
# into bin/llamagpu when the build asks for a GPU.  Included at the end of
# mk/engine.mk.
#
#   make                      CPU only: nothing here is built
#   make GPU=cuda             nvcc for CUDA_ARCHS (default "80 90": sm_80 and
#                             sm_90 code, plus PTX of the highest for newer
#                             cards) -> build/gpu/libllamagpu_gpu.a, linked
#                             with cuBLAS and the CUDA runtime
#   make GPU=hip              hipcc for HIP_ARCHS (default "gfx90a gfx942
#                             gfx1100", each kept only if the toolchain can
#                             build it: mk/hip-archs.sh) -> build/hip/...
#   make GPU=cuda gpu-tests   build/gpu/check_kernels (tests/gpu/)
#   make gpu-compile-check    CUDA (sm_80, sm_90) and HIP objects, with
#                             whichever toolkits are installed; links nothing
#
# NVCC: nvcc from PATH, else /usr/local/cuda/bin/nvcc.  HIPCC: hipcc from
# PATH, else /opt/rocm/bin/hipcc.

ifneq ($(filter-out cuda hip,$(GPU)),)
$(error GPU must be cuda or hip (or left out for the CPU-only build), not '$(GPU)')
endif

comma          := ,
GPU_SRCS       := $(wildcard kernels/*.cu)
GPU_HDRS       := $(wildcard kernels/*.cuh kernels/*.h) src/engine/lg_types.h
GPU_CXXFLAGS   := -std=c++17 -O3 -Ikernels -Isrc/engine $(GPU_EXTRA_FLAGS)

# ---- CUDA ---------------------------------------------------------------
NVCC           ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
CUDA_PATH      ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDA_LIBDIR    ?= $(firstword $(wildcard $(CUDA_PATH)/lib64 $(CUDA_PATH)/targets/x86_64-linux/lib) /usr/local/cuda/lib64)
CUDA_ARCHS     ?= 80 90
# numerically highest, whose PTX is embedded too so a newer card JIT-compiles it
CUDA_ARCH_MAX   = $(shell echo $(CUDA_ARCHS) | tr ' ' '\n' | sort -n | tail -1)
CUDA_GENCODE    = $(foreach a,$(CUDA_ARCHS),-gencode=arch=compute_$(a),code=sm_$(a)) \
                  -gencode=arch=compute_$(CUDA_ARCH_MAX),code=compute_$(CUDA_ARCH_MAX)
NVCC_FLAGS      = $(GPU_CXXFLAGS) $(CUDA_GENCODE) -Xcompiler -Wall,-fPIC

# ---- HIP ----------------------------------------------------------------
HIPCC          ?= $(firstword $(shell command -v hipcc 2>/dev/null) $(wildcard /opt/rocm/bin/hipcc))
HIP_ARCHS      ?= gfx90a gfx942 gfx1100
HIP_LIBDIR     ?= $(firstword $(wildcard /opt/rocm/lib))
HIP_FLAGS       = $(GPU_CXXFLAGS) -DLG_HIP $(HIP_ARCH_FLAGS) -Wall -fPIC

ifeq ($(GPU),cuda)
ifeq ($(NVCC),)
$(error GPU=cuda: nvcc is neither on PATH nor in /usr/local/cuda/bin (set NVCC=...))
endif
GPU_BUILD      := build/gpu
GPU_COMPILE     = $(NVCC) $(NVCC_FLAGS)
GPU_LINK_LIBS  := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcudart -lstdc++ -ldl -lrt
endif

ifeq ($(GPU),hip)
ifeq ($(HIPCC),)
$(error GPU=hip: hipcc is neither on PATH nor in /opt/rocm/bin (set HIPCC=...))
endif
GPU_BUILD      := build/hip
# which HIP_ARCHS this toolchain builds (each tried once, the verdicts kept in build/hip/archs)
HIP_ARCH_FLAGS := $(shell sh mk/hip-archs.sh '$(HIPCC)' '$(CURDIR)/$(GPU_BUILD)' $(HIP_ARCHS))
ifeq ($(strip $(HIP_ARCH_FLAGS)),)
$(error GPU=hip: hipcc builds none of HIP_ARCHS ($(HIP_ARCHS)); see $(GPU_BUILD)/archs)
endif
GPU_COMPILE     = $(HIPCC) $(HIP_FLAGS)
GPU_LINK_LIBS  := $(if $(HIP_LIBDIR),-L$(HIP_LIBDIR) -Wl$(comma)-rpath$(comma)$(HIP_LIBDIR)) -lamdhip64 -lstdc++ -lm
endif

ifneq ($(GPU),)
GPU_OBJS       := $(patsubst kernels/%.cu,$(GPU_BUILD)/%.o,$(GPU_SRCS))
GPU_LIB        := $(GPU_BUILD)/libllamagpu_gpu.a
GPU_CHECK_BIN  := $(GPU_BUILD)/check_kernels

# the compile command in a file the objects depend on: another CUDA_ARCHS or
# HIP_ARCHS rebuilds them (make alone would keep sm_90-only objects for "80 90")
GPU_FLAGS_STAMP := $(GPU_BUILD)/compile-flags
ifneq ($(MAKECMDGOALS),clean)
$(shell mkdir -p $(GPU_BUILD) && { [ -f $(GPU_FLAGS_STAMP) ] && [ "$$(cat $(GPU_FLAGS_STAMP))" = '$(GPU_COMPILE)' ] || echo '$(GPU_COMPILE)' >$(GPU_FLAGS_STAMP); })
endif

$(GPU_BUILD)/%.o: kernels/%.cu $(GPU_HDRS) $(GPU_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(GPU_COMPILE) -c -o $@ $<

$(GPU_LIB): $(GPU_OBJS)
	@rm -f $@
	ar rcs $@ $^

# the engine (engine.mk, built with -DLG_HAVE_GPU) calls into the kernels:
# every binary linked with it links them too, after it
ENGINE_LIBS    := $(GPU_LIB) $(GPU_LINK_LIBS) $(ENGINE_LIBS)
$(CLI_BIN) $(TEST_BINS): $(GPU_LIB)

$(GPU_BUILD)/check_kernels.o: tests/gpu/check_kernels.c $(wildcard tests/gpu/*.h) src/engine/*.h kernels/lg_kernels.h
	@mkdir -p $(dir $@)
	$(ENGINE_CC) $(ENGINE_CFLAGS) -Ikernels -Itests/gpu -c -o $@ $<

$(GPU_CHECK_BIN): $(GPU_BUILD)/check_kernels.o $(ENGINE_LIB) $(GPU_LIB)
	$(ENGINE_CC) -o $@ $< $(ENGINE_LIB) $(ENGINE_LIBS)

# engine sources that change under LG_HAVE_GPU: compiled (not linked) by gpu-compile-check
GPU_ENGINE_OBJS := $(patsubst src/engine/%.c,$(ENGINE_BUILD)/%.o,$(shell grep -l LG_HAVE_GPU src/engine/*.c 2>/dev/null))

.PHONY: gpu-lib gpu-tests gpu-objs
gpu-lib: $(GPU_LIB)
gpu-tests: $(GPU_CHECK_BIN)
gpu-objs: $(GPU_LIB) $(GPU_ENGINE_OBJS) $(GPU_BUILD)/check_kernels.o
else
.PHONY: gpu-lib gpu-tests gpu-objs
gpu-lib gpu-tests gpu-objs:
	@echo "$@: choose a GPU build: make GPU=cuda $@ or make GPU=hip $@" >&2; exit 2
endif

# bin/llamagpu is linked again when the flavour changes (make, then make GPU=cuda, then make)
GPU_FLAVOR     := build/gpu-flavor
ifneq ($(MAKECMDGOALS),clean)
$(shell mkdir -p build && { [ -f $(GPU_FLAVOR) ] && [ "$$(cat $(GPU_FLAVOR))" = "$(GPU)" ] || echo "$(GPU)" >$(GPU_FLAVOR); })
endif
$(CLI_BIN): $(GPU_FLAVOR)

# CI: every kernel compiled for both platforms, where the toolkits exist
# (one result line each), without linking the CLI.
.PHONY: gpu-compile-check
gpu-compile-check:
	@if [ -n "$(NVCC)" ]; then \
	  $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) GPU=cuda CUDA_ARCHS="80 90" gpu-objs && \
	  echo "CUDA compile (sm_80, sm_90): ok"; \
	else echo "SKIP: CUDA compile: no nvcc on PATH or in /usr/local/cuda/bin"; fi
	@if [ -n "$(HIPCC)" ]; then \
	  $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) GPU=hip gpu-objs && \
	  echo "HIP compile: ok"; \
	else echo "SKIP: HIP compile: no hipcc on PATH or in /opt/rocm/bin"; fi
