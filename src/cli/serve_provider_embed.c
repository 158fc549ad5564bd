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
#include "serve_vectors.h"

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

/*
 * The embeddings answer as the EMBED reply: data[i].embedding (placed by
 * its index), unit length when normalize asks.  False with the error sent.
 */
static bool
send_embeddings(serve_request *r, provider_call *c, int n_inputs, int attempts)
{
	const char *norm = serve_fields_get(&r->fields, "normalize");
	bool		normalize = norm == NULL || strcmp(norm, "0") != 0;
	float	   *v = NULL;
	int			n_embd = 0;
	long		n_prompt = 0;
	char		msg[256];
	char		detail[256];
	const char *status;
	serve_frame f = {0};
	lg_buf		b64;

	status = serve_parse_embeddings(c->body.data, c->body.len, n_inputs, normalize, &v, &n_embd,
									&n_prompt, msg, sizeof(msg), detail, sizeof(detail));
	if (status != NULL)
	{
		serve_send_error_detail(r, status, detail[0] ? detail : NULL, NULL, "%s", msg);
		return false;
	}
	serve_request_unlist(r);
	serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
	serve_frame_fieldf(&f, "n_embd", "%d", n_embd);
	serve_frame_field(&f, "pooling", "remote");
	/* the provider's count is the request's, in usage rows and metrics alike */
	atomic_store(&r->n_prompt, n_prompt >= 0 && n_prompt < INT32_MAX ? (int) n_prompt : 0);
	serve_frame_fieldf(&f, "n_prompt", "%ld", n_prompt);
	serve_frame_field(&f, "n_truncated", "0");
	serve_frame_field(&f, "t_queue_ms", "0.000");
	serve_frame_fieldf(&f, "t_embed_ms", "%.3f", (serve_now_us() - c->t_start_us) / 1000.0);
	serve_frame_fieldf(&f, "n_attempts", "%d", attempts);
	lg_buf_init(&b64);
	for (int k = 0; k < n_inputs; k++)
	{
		/* the provider does not say how many tokens each input had */
		serve_frame_field(&f, "n_tokens", "0");
		b64.len = 0;
		if (!serve_floats_b64(&b64, v + (size_t) k * n_embd, n_embd))
			f.oom = true;
		serve_frame_field(&f, "embedding", b64.data ? b64.data : "");
	}
	lg_buf_free(&b64);
	free(v);
	if (f.oom)
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory for the embeddings' reply");
	else
	{
		/* counted before the client hears of it, so a STATUS it sends next sees it */
		r->outcome = "stop";
		serve_metrics_embedded(r->metrics, n_inputs);
		serve_metrics_finish(r);
		serve_conn_send(r->conn, &f);
	}
	serve_frame_free(&f);
	return !f.oom;
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
