# llamagpu — top-level build: the PostgreSQL extension (PGXS), the inference
# engine library and the `llamagpu` command-line tool (mk/engine.mk).
#
#   make                 extension (llamagpu.so) and bin/llamagpu
#   make install         both, bin/llamagpu into $(pg_config --bindir)
#   make installcheck    pg_regress tests against a running server
#   make check-engine    the engine's C tests

EXTENSION    = llamagpu
EXTVERSION   = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big   = llamagpu
OBJS         = $(patsubst %.c,%.o,$(wildcard src/pg/*.c))
# The install script is built from the parts in sql/install/, in name order
# (one part per feature, so features are added without editing each other's
# SQL); upgrade scripts sql/llamagpu--A--B.sql are written by hand.
INSTALL_SQL  = sql/$(EXTENSION)--$(EXTVERSION).sql
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))
DATA_built   = $(INSTALL_SQL)
DATA         = $(filter-out $(INSTALL_SQL),$(wildcard sql/$(EXTENSION)--*--*.sql))
REGRESS      = llamagpu_setup llamagpu_registry llamagpu_errors llamagpu_generate llamagpu_batch llamagpu_cache llamagpu_jobs llamagpu_tools llamagpu_structured llamagpu_quota llamagpu_embed llamagpu_plugins llamagpu_roles
REGRESS_OPTS = --load-extension=$(EXTENSION)
PG_CPPFLAGS  = -Isrc/pg -Isrc/cli -DLLAMAGPU_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK   = -lcurl
EXTRA_CLEAN  = build bin results regression.diffs regression.out tmp_check log

# The extension is small C glue; it needs no LLVM bitcode (and the GPU code
# will live in a separately built static library PGXS must not see).
override with_llvm = no

PG_CONFIG   ?= pg_config
PGXS        := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
CONTRIB_TESTDB = llamagpu_regress

include mk/engine.mk

all: $(CLI_BIN) plugins

$(OBJS): $(wildcard src/pg/*.h)

$(INSTALL_SQL): $(INSTALL_PARTS)
	{ echo '/* $(EXTENSION)--$(EXTVERSION).sql: built from sql/install/ -- edit those files */'; \
	  for f in $(INSTALL_PARTS); do echo; echo "-- ---- $$f"; cat $$f; done; } > $@.tmp && mv $@.tmp $@

# bin/llamagpu is the engine server the background worker starts.
install: install-llamagpu-bin
install-llamagpu-bin: $(CLI_BIN)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(CLI_BIN) '$(DESTDIR)$(bindir)/llamagpu'

uninstall: uninstall-llamagpu-bin
uninstall-llamagpu-bin:
	rm -f '$(DESTDIR)$(bindir)/llamagpu'

.PHONY: install-llamagpu-bin uninstall-llamagpu-bin
