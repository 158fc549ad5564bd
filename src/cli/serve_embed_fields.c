/*
 * serve_embed_fields.c — an EMBED request's fields read into options
 * (pooling, normalize, truncate, priority, input_base, n_ctx, the inputs),
 * apart from the model and the scheduler so that it can be fuzzed
 * (tests/fuzz/fuzz_fields.c).  Every malformed value gets its own message.
 */
#include "serve_embed_fields.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 0/1 field into *out (unchanged when absent); false with msg set. */
static bool
field_bool(const serve_fields *f, const char *key, bool *out, char *msg, size_t msg_size)
{
	const char *v = serve_fields_get(f, key);

	if (v == NULL)
		return true;
	if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
	{
		snprintf(msg, msg_size, "invalid value for %s: \"%s\" (0 or 1)", key, v);
		return false;
	}
	*out = v[0] == '1';
	return true;
}

/* A decimal integer field in [lo, hi] into *out (unchanged when absent); false with msg set. */
static bool
field_int(const serve_fields *f, const char *key, long long lo, long long hi, long long *out,
		  char *msg, size_t msg_size)
{
	const char *v = serve_fields_get(f, key);
	char	   *end;
	long long	x;

	if (v == NULL)
		return true;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
	{
		snprintf(msg, msg_size, "invalid value for %s: \"%s\"", key, v);
		return false;
	}
	*out = x;
	return true;
}

/* EMBED's fields into *o (serve_embed_fields.h); false with msg set. */
bool
serve_embed_fields(const serve_fields *f, serve_embed_opts *o, char *msg, size_t msg_size)
{
	const char *v;
	lg_error	err = {0};

	memset(o, 0, sizeof(*o));
	o->pool = LG_POOL_DEFAULT;
	o->normalize = true;
	o->base = 1;
	if ((v = serve_fields_get(f, "pooling")) != NULL && strcmp(v, "default") != 0)
	{
		if (lg_pooling_parse(v, &o->pool, &err) != LG_OK)
		{
			snprintf(msg, msg_size, "%s", err.msg);
			return false;
		}
		if (o->pool == LG_POOL_NONE)
		{
			snprintf(msg, msg_size, "pooling \"none\" gives a vector per token; EMBED returns one per input");
			return false;
		}
	}
	if (!field_bool(f, "normalize", &o->normalize, msg, msg_size) ||
		!field_bool(f, "truncate", &o->truncate, msg, msg_size) ||
		!field_int(f, "priority", -1000000, 1000000, &o->priority, msg, msg_size) ||
		!field_int(f, "input_base", 0, INT32_MAX, &o->base, msg, msg_size) ||
		!field_int(f, "n_ctx", 0, LLONG_MAX, &o->n_ctx, msg, msg_size))
		return false;
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->keys[i], "input") == 0)
			o->n_inputs++;
	if (o->n_inputs == 0)
	{
		snprintf(msg, msg_size, "an EMBED request needs at least one input");
		return false;
	}
	return true;
}
