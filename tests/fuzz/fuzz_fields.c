/*
 * fuzz_fields.c — libFuzzer target for what the engine server reads from
 * a request frame (src/cli/serve_frame.c): the payload split into fields,
 * an EMBED request's fields (src/cli/serve_embed_fields.c), and the
 * --plugin NAME:SHA256:PATH spec (src/cli/plugin_load.c).
 *
 * fuzz-sources: src/cli/serve_frame.c src/cli/serve_embed_fields.c src/cli/plugin_load.c src/cli/sha256.c
 * fuzz-libs: -ldl
 *
 * Properties checked with a trap:
 *   - a payload that splits into fields is rebuilt byte for byte by
 *     serve_frame_field, and its frame header holds the payload's length;
 *   - serve_fields_get finds the first value of every key;
 *   - EMBED options are in range when accepted, and a refusal has a message;
 *   - an accepted --plugin spec has a valid name, 64 hex digits and a
 *     non-empty path that is the end of the spec.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "serve_embed_fields.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* Check a --plugin spec (the input up to its first NUL). */
static void
check_plugin_spec(const char *spec)
{
	plugin_spec ps;
	char		err[256] = "";

	if (!plugin_spec_parse(spec, &ps, err, sizeof(err)))
	{
		CHECK(err[0] != '\0');
		return;
	}
	CHECK(plugin_name_valid(ps.name));
	CHECK(strlen(ps.sha256) == 64);
	for (int i = 0; i < 64; i++)
		CHECK(isxdigit((unsigned char) ps.sha256[i]));
	CHECK(ps.path[0] != '\0');
	CHECK(ps.path == spec + strlen(ps.name) + 1 + 64 + 1);
}

/* Check the EMBED options read from the fields. */
static void
check_embed(const serve_fields *f)
{
	serve_embed_opts o;
	char		msg[256] = "";

	if (!serve_embed_fields(f, &o, msg, sizeof(msg)))
	{
		CHECK(msg[0] != '\0');
		return;
	}
	CHECK(o.n_inputs >= 1 && o.n_inputs <= f->n);
	CHECK(o.priority >= -1000000 && o.priority <= 1000000);
	CHECK(o.base >= 0 && o.base <= INT32_MAX);
	CHECK(o.n_ctx >= 0);
	CHECK(o.pool != LG_POOL_NONE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *payload = (const char *) data;
	serve_fields f;
	serve_frame fr = {0};
	char	   *spec;

	spec = malloc(size + 1);
	memcpy(spec, data, size);
	spec[size] = '\0';
	check_plugin_spec(spec);
	free(spec);

	if (!serve_fields_parse(payload, size, &f))
	{
		CHECK(f.n == 0 && f.keys == NULL);
		return 0;
	}
	serve_frame_begin(&fr, LG_FRAME_EMBED, 7);
	for (int i = 0; i < f.n; i++)
	{
		CHECK(f.keys[i] >= payload && f.values[i] < payload + size);
		CHECK(serve_fields_get(&f, f.keys[i]) != NULL);
		/* the first value of a key is the one found */
		for (int j = 0; j < i; j++)
			if (strcmp(f.keys[j], f.keys[i]) == 0)
			{
				CHECK(serve_fields_get(&f, f.keys[i]) != f.values[i] || f.values[j] == f.values[i]);
				break;
			}
		serve_frame_field(&fr, f.keys[i], f.values[i]);
	}
	if (size <= LG_PROTO_MAX_PAYLOAD)
	{
		CHECK(serve_frame_finish(&fr));
		CHECK(fr.len == LG_PROTO_HEADER_SIZE + size);
		CHECK(size == 0 || memcmp(fr.data + LG_PROTO_HEADER_SIZE, payload, size) == 0);
		CHECK(((size_t) (unsigned char) fr.data[2] << 8 | (unsigned char) fr.data[3]) == (size & 0xffff));
	}
	check_embed(&f);
	serve_frame_free(&fr);
	serve_fields_free(&f);
	return 0;
}
