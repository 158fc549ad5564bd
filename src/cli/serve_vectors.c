/*
 * serve_vectors.c — embedding vectors on the wire, apart from any socket
 * or HTTP transfer so that they can be fuzzed (tests/fuzz/fuzz_vectors.c):
 * the EMBED reply's base64 of little-endian float32 (local and remote
 * models alike), and a remote provider's /embeddings answer read into
 * floats, and whole counts read from JSON without undefined casts.
 */
#include "serve_vectors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_value.h"

/*
 * A JSON number that is a whole count in [0, max] into *out; false otherwise.
 * Checked as a double first: casting 1e300 (or -1e300) to long is undefined.
 */
bool
serve_json_count(const lg_json_node *n, double max, long *out)
{
	if (n == NULL || n->kind != LG_JSON_NUMBER || !(n->number >= 0 && n->number <= max) ||
		n->number != floor(n->number))
		return false;
	*out = (long) n->number;
	return true;
}

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Append n floats to out as base64 of their little-endian bytes (no NUL); false when out of memory. */
bool
serve_floats_b64(lg_buf *out, const float *v, int32_t n)
{
	size_t		nbytes = (size_t) n * 4;

	for (size_t i = 0; i < nbytes; i += 3)
	{
		unsigned char b[3] = {0, 0, 0};
		uint32_t	w;
		char		q[4];

		/* byte k of the vector: byte k % 4 of float k / 4, least significant first */
		for (size_t k = 0; k < 3 && i + k < nbytes; k++)
		{
			uint32_t	u;

			memcpy(&u, &v[(i + k) / 4], 4);
			b[k] = (unsigned char) (u >> (8 * ((i + k) % 4)));
		}
		w = (uint32_t) b[0] << 16 | (uint32_t) b[1] << 8 | b[2];
		q[0] = b64_chars[(w >> 18) & 63];
		q[1] = b64_chars[(w >> 12) & 63];
		q[2] = i + 1 < nbytes ? b64_chars[(w >> 6) & 63] : '=';
		q[3] = i + 2 < nbytes ? b64_chars[w & 63] : '=';
		if (!lg_buf_append(out, q, 4))
			return false;
	}
	return true;
}

/*
 * A provider's /embeddings answer: data[i].embedding placed by data[i].index
 * (its position when absent), one per input, all of one length, every
 * element a number that float32 holds; unit length when normalize asks.
 * On success NULL, *out (malloc'd [n_inputs][*n_embd]), *n_embd and
 * *n_prompt (usage.prompt_tokens, or 0); else the wire status, with msg
 * (and detail, when the body is not JSON) set.
 */
const char *
serve_parse_embeddings(const char *body, size_t len, int n_inputs, bool normalize, float **out,
					   int *n_embd, long *n_prompt, char *msg, size_t msg_size,
					   char *detail, size_t detail_size)
{
	lg_error	err = {0};
	lg_json_node *o = lg_json_parse(body ? body : "", len, &err);
	const lg_json_node *data = o ? lg_json_get(o, "data") : NULL;
	const lg_json_node *usage = o ? lg_json_get(o, "usage") : NULL;
	const lg_json_node **vecs = NULL;
	const char *status = LG_WIRE_REMOTE_PROTOCOL;
	float	   *v = NULL;
	int			dim = -1;

	*out = NULL;
	*n_embd = 0;
	*n_prompt = 0;
	detail[0] = '\0';
	if (o == NULL || data == NULL || data->kind != LG_JSON_ARRAY)
	{
		snprintf(msg, msg_size, "the provider's embeddings answer has no \"data\" array");
		if (o == NULL)
			snprintf(detail, detail_size, "%s", err.msg);
		goto done;
	}
	if (n_inputs <= 0 || (vecs = calloc((size_t) n_inputs, sizeof(*vecs))) == NULL)
	{
		status = n_inputs <= 0 ? LG_WIRE_ARG : LG_WIRE_NOMEM;
		snprintf(msg, msg_size, n_inputs <= 0 ? "request lacks input" : "out of memory");
		goto done;
	}
	for (size_t i = 0; i < data->n; i++)
	{
		const lg_json_node *d = data->items[i];
		const lg_json_node *ix = lg_json_get(d, "index");
		const lg_json_node *e = lg_json_get(d, "embedding");
		long		k = (long) i;

		/* an index is checked as a double: a cast of 1e300 to long is undefined */
		if ((ix != NULL && !serve_json_count(ix, (double) n_inputs - 1, &k)) || k >= n_inputs ||
			vecs[k] || e == NULL || e->kind != LG_JSON_ARRAY || e->n == 0 || e->n > INT32_MAX / 4 ||
			(dim >= 0 && (int) e->n != dim))
		{
			snprintf(msg, msg_size, "the provider's embedding %zu is malformed (%d inputs)", i, n_inputs);
			goto done;
		}
		vecs[k] = e;
		dim = (int) e->n;
	}
	for (int k = 0; k < n_inputs; k++)
		if (vecs[k] == NULL)
		{
			snprintf(msg, msg_size, "the provider sent no embedding for input %d", k + 1);
			goto done;
		}
	v = malloc(sizeof(float) * (size_t) n_inputs * (size_t) dim);
	if (v == NULL)
	{
		status = LG_WIRE_NOMEM;
		snprintf(msg, msg_size, "out of memory");
		goto done;
	}
	for (int k = 0; k < n_inputs; k++)
	{
		float	   *row = v + (size_t) k * dim;
		double		ss = 0;

		for (int j = 0; j < dim; j++)
		{
			const lg_json_node *x = vecs[k]->items[j];

			/* 1e39 is a JSON number but no float32: it would come out inf, and NaN once normalised */
			if (x->kind != LG_JSON_NUMBER || !isfinite((float) x->number))
			{
				snprintf(msg, msg_size, "the provider's embedding %d holds a %s", k + 1,
						 x->kind == LG_JSON_NUMBER ? "a number too large for float32" :
						 lg_json_kind_name(x->kind));
				goto done;
			}
			row[j] = (float) x->number;
			ss += (double) row[j] * row[j];
		}
		if (normalize && ss > 0)
			for (int j = 0; j < dim; j++)
				row[j] = (float) (row[j] / sqrt(ss));
	}
	if (usage)
		(void) serve_json_count(lg_json_get(usage, "prompt_tokens"), INT32_MAX, n_prompt);
	*out = v;
	*n_embd = dim;
	v = NULL;
	status = NULL;

done:
	free(v);
	free(vecs);
	lg_json_node_free(o);
	return status;
}
