# mk/plugins.mk — engine plugins (docs/plugins.md): the examples and the
# test plugins, each one C file built against src/engine/lg_plugin.h alone.
#
#   make plugins     build/plugins/*.so

PLUGIN_BUILD   ?= build/plugins
PLUGIN_CFLAGS  := -std=c11 -O2 -g -Wall -Wextra -Wno-unused-parameter -fPIC -shared -Isrc/engine
EXAMPLE_PLUGINS := $(patsubst examples/plugins/%/,$(PLUGIN_BUILD)/%.so,$(wildcard examples/plugins/*/))
TEST_PLUGINS   := $(patsubst tests/plugins/%.c,$(PLUGIN_BUILD)/test_%.so,$(wildcard tests/plugins/*.c))

$(PLUGIN_BUILD)/test_%.so: tests/plugins/%.c src/engine/lg_plugin.h
	@mkdir -p $(dir $@)
	$(ENGINE_CC) $(PLUGIN_CFLAGS) -o $@ $<

.SECONDEXPANSION:
$(PLUGIN_BUILD)/%.so: examples/plugins/%/$$*.c src/engine/lg_plugin.h
	@mkdir -p $(dir $@)
	$(ENGINE_CC) $(PLUGIN_CFLAGS) -o $@ $<

.PHONY: plugins
plugins: $(EXAMPLE_PLUGINS) $(TEST_PLUGINS)
