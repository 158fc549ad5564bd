/*
 * serve_provider_embed.c — EMBED for a remote model: the inputs go in one
 * POST {base_url}/embeddings; the vectors come back placed by their index,
 * made unit length when normalize asks (as local ones are), and are sent as
 * the one RESULT a local EMBED gets (base64 of little-endian float32).
 */
#include "serve_provider.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_value.h"

/* The EMBED's inputs as an embeddings request body; false with the error sent. */
static bool
build_embed_body(serve_request *r, lg_buf *b, int *n_inputs)
{
	const char *model = serve_fields_get(&r->fields, "remote_model");
	const char *pooling = serve_fields_get(&r->fields, "pooling");
	const char *truncate = serve_fields_get(&r->fields, "truncate");

	if (pooling && strcmp(pooling, "default") != 0)
	{
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNSUPPORTED, NULL,
								"A remote model pools as its provider does; leave pooling out.",
								"pooling \"%s\" cannot be chosen for a remote model", pooling);
		return false;
	}
	if (truncate && strcmp(truncate, "1") == 0)
	{
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNSUPPORTED, NULL,
								"Shorten the input: the provider decides what to do with a long one.",
								"truncate cannot be sent to a remote model");
		return false;
	}
	APPEND_LIT(b, "{\"model\":");
	lg_buf_append_json_str(b, model, strlen(model));
	APPEND_LIT(b, ",\"encoding_format\":\"float\",\"input\":[");
	*n_inputs = 0;
	for (int i = 0; i < r->fields.n; i++)
	{
		if (strcmp(r->fields.keys[i], "input") != 0)
			continue;
		if ((*n_inputs)++ > 0)
			APPEND_LIT(b, ",");
		lg_buf_append_json_str(b, r->fields.values[i], strlen(r->fields.values[i]));
	}
	if (!APPEND_LIT(b, "]}"))
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
		return false;
	}
	if (*n_inputs == 0)
	{
		serve_send_error(r, LG_WIRE_ARG, "request lacks input");
		return false;
	}
	return true;
}

/* Append n floats as base64 of their little-endian bytes (the EMBED reply's form). */
static void
append_base64_floats(lg_buf *out, const float *v, int n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		len = (size_t) n * 4;
	unsigned char *raw = malloc(len ? len : 1);

	if (raw == NULL)
		return;
	for (int i = 0; i < n; i++)
	{
		uint32_t	u;

		memcpy(&u, &v[i], 4);
		raw[i * 4] = u & 0xff;
		raw[i * 4 + 1] = (u >> 8) & 0xff;
		raw[i * 4 + 2] = (u >> 16) & 0xff;
		raw[i * 4 + 3] = (u >> 24) & 0xff;
	}
	for (size_t i = 0; i < len; i += 3)
	{
		uint32_t	w = (uint32_t) raw[i] << 16 | (i + 1 < len ? (uint32_t) raw[i + 1] << 8 : 0) |
			(i + 2 < len ? raw[i + 2] : 0);
		char		q[4] = {tbl[(w >> 18) & 63], tbl[(w >> 12) & 63],
			i + 1 < len ? tbl[(w >> 6) & 63] : '=', i + 2 < len ? tbl[w & 63] : '='};

		lg_buf_append(out, q, 4);
	}
	free(raw);
}

/*
 * The embeddings answer as the EMBED reply: data[i].embedding (placed by
 * its index), unit length when normalize asks.  False with the error sent.
 */
static bool
send_embeddings(serve_request *r, provider_call *c, int n_inputs, int attempts)
{
	lg_error	err = {0};
	lg_json_node *o = lg_json_parse(c->body.data ? c->body.data : "", c->body.len, &err);
	const lg_json_node *data = o ? lg_json_get(o, "data") : NULL;
	const lg_json_node *usage = o ? lg_json_get(o, "usage") : NULL;
	const char *norm = serve_fields_get(&r->fields, "normalize");
	bool		normalize = norm == NULL || strcmp(norm, "0") != 0;
	const lg_json_node **vecs = calloc((size_t) n_inputs, sizeof(*vecs));
	float	   *v = NULL;
	int			n_embd = -1;
	serve_frame f = {0};
	bool		ok = false;

	if (o == NULL || data == NULL || data->kind != LG_JSON_ARRAY || vecs == NULL)
	{
		serve_send_error_detail(r, LG_WIRE_REMOTE_PROTOCOL, o ? NULL : err.msg, NULL,
								"the provider's embeddings answer has no \"data\" array");
		goto done;
	}
	for (size_t i = 0; i < data->n; i++)
	{
		const lg_json_node *d = data->items[i];
		const lg_json_node *ix = lg_json_get(d, "index");
		const lg_json_node *e = lg_json_get(d, "embedding");
		long		k = ix && ix->kind == LG_JSON_NUMBER ? (long) ix->number : (long) i;

		if (k < 0 || k >= n_inputs || vecs[k] || e == NULL || e->kind != LG_JSON_ARRAY || e->n == 0 ||
			(n_embd >= 0 && (int) e->n != n_embd))
		{
			serve_send_error(r, LG_WIRE_REMOTE_PROTOCOL,
							 "the provider's embedding %zu is malformed (index %ld, %d inputs)", i, k, n_inputs);
			goto done;
		}
		vecs[k] = e;
		n_embd = (int) e->n;
	}
	for (int k = 0; k < n_inputs; k++)
		if (vecs[k] == NULL)
		{
			serve_send_error(r, LG_WIRE_REMOTE_PROTOCOL, "the provider sent no embedding for input %d", k + 1);
			goto done;
		}
	v = malloc(sizeof(float) * (size_t) n_embd);
	if (v == NULL)
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
		goto done;
	}
	serve_request_unlist(r);
	serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
	serve_frame_fieldf(&f, "n_embd", "%d", n_embd);
	serve_frame_field(&f, "pooling", "remote");
	{
		const lg_json_node *pt = usage ? lg_json_get(usage, "prompt_tokens") : NULL;
		long		n_prompt = pt && pt->kind == LG_JSON_NUMBER && pt->number >= 0 &&
			pt->number < INT32_MAX ? (long) pt->number : 0L;

		/* the provider's count is the request's, in usage rows and metrics alike */
		atomic_store(&r->n_prompt, (int) n_prompt);
		serve_frame_fieldf(&f, "n_prompt", "%ld", n_prompt);
	}
	serve_frame_field(&f, "n_truncated", "0");
	serve_frame_field(&f, "t_queue_ms", "0.000");
	serve_frame_fieldf(&f, "t_embed_ms", "%.3f", (serve_now_us() - c->t_start_us) / 1000.0);
	serve_frame_fieldf(&f, "n_attempts", "%d", attempts);
	for (int k = 0; k < n_inputs; k++)
	{
		double		ss = 0;
		lg_buf		b64;

		for (int j = 0; j < n_embd; j++)
		{
			const lg_json_node *x = vecs[k]->items[j];

			if (x->kind != LG_JSON_NUMBER)
			{
				serve_frame_free(&f);
				serve_send_error(r, LG_WIRE_REMOTE_PROTOCOL, "the provider's embedding %d holds a %s",
								 k + 1, lg_json_kind_name(x->kind));
				goto done;
			}
			v[j] = (float) x->number;
			ss += (double) v[j] * v[j];
		}
		if (normalize && ss > 0)
			for (int j = 0; j < n_embd; j++)
				v[j] = (float) (v[j] / sqrt(ss));
		/* the provider does not say how many tokens each input had */
		serve_frame_field(&f, "n_tokens", "0");
		lg_buf_init(&b64);
		append_base64_floats(&b64, v, n_embd);
		serve_frame_field(&f, "embedding", b64.data ? b64.data : "");
		lg_buf_free(&b64);
	}
	/* counted before the client hears of it, so a STATUS it sends next sees it */
	r->outcome = "stop";
	serve_metrics_embedded(r->metrics, n_inputs);
	serve_metrics_finish(r);
	serve_conn_send(r->conn, &f);
	ok = true;

done:
	serve_frame_free(&f);
	free(v);
	free(vecs);
	lg_json_node_free(o);
	return ok;
}

/* EMBED for a remote model: POST {base_url}/embeddings, one RESULT with every vector. */
void
provider_embed(serve_request *r)
{
	provider_opts po;
	provider_call c;
	provider_http h;
	lg_buf		body;
	int			n_inputs = 0;
	int			attempts = 0;

	memset(&h, 0, sizeof(h));
	lg_buf_init(&body);
	/* measured like a local model's embeddings, under the model's name (llm_stat_models) */
	r->metrics = serve_metrics_get(r->model);
	provider_call_begin(r, &c, &po);
	po.stream = false;
	if (build_embed_body(r, &body, &n_inputs) &&
		provider_http_begin(r, &c, &po, "/embeddings", &body, &h) &&
		provider_http_run(r, &c, &po, &h, &attempts))
		send_embeddings(r, &c, n_inputs, attempts);
	provider_http_end(&h);
	provider_call_end(&c);
	lg_buf_free(&body);
}
