# mk/standalone.mk — the engine, bin/llamagpu and (with GPU=) the GPU
# kernels and their checker, without PostgreSQL: the top Makefile needs
# pg_config for PGXS, a GPU machine that only runs the engine does not.
#
#   make -f mk/standalone.mk [GPU=cuda|hip] [-j16]
#   make -f mk/standalone.mk check-engine

.DEFAULT_GOAL := all

include mk/engine.mk

.PHONY: all clean
all: $(CLI_BIN) $(if $(GPU),$(GPU_CHECK_BIN))

clean:
	rm -rf build bin
