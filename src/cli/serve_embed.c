/*
 * serve_embed.c — the engine server's EMBED requests: tokenize every input
 * on the worker thread, then submit them as one embedding request to the
 * model's scheduler, which evaluates them between generation steps within
 * the token budget (scheduler.h).  The scheduler thread sends the RESULT:
 * one base64 field per input, the vector's float32 values in little-endian
 * byte order, so the client gets exactly the floats the engine computed.
 */
#include "serve.h"

#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "serve_embed_fields.h"
#include "serve_vectors.h"
#include "vocab.h"

/* What the scheduler thread needs once the vectors are there. */
typedef struct serve_embed_job
{
	serve_request *r;
	int32_t		n_inputs;
	int32_t		n_embd;
	int32_t    *n_tokens;		/* per input, after truncation */
	int32_t		n_truncated;
	lg_pooling	pool;			/* resolved */
	float	   *out;			/* [n_inputs][n_embd] */
} serve_embed_job;

/* Append n floats to f as base64 of their little-endian bytes, NUL-terminated. */
static void
append_floats_b64(serve_frame *f, const float *v, int32_t n)
{
	lg_buf		text;

	lg_buf_init(&text);
	if (!serve_floats_b64(&text, v, n) || !lg_buf_append(&text, "", 1))
		f->oom = true;
	else
		serve_frame_append(f, text.data, text.len);
	lg_buf_free(&text);
}

/* Free a job (not its request). */
static void
job_free(serve_embed_job *j)
{
	if (j == NULL)
		return;
	free(j->n_tokens);
	free(j->out);
	free(j);
}

/* The embeddings are done (or failed): send RESULT or ERROR, let go of the request. */
static void
embed_done(void *arg, const lg_sched_result *res)
{
	serve_embed_job *j = arg;
	serve_request *r = j->r;

	if (atomic_load(&r->timed_out))
		serve_send_error(r, LG_WIRE_TIMEOUT, "the embedding request timed out");
	else if (atomic_load(&r->conn->closed))
		serve_log(SERVE_LOG_DEBUG, "request %llu: client went away", (unsigned long long) r->seq);
	else if (res->status == LG_ERR_CANCELLED)
		serve_send_error(r, LG_WIRE_CANCELLED, "%s", atomic_load(&r->unloaded) ?
						 "the request was cancelled: its model was unloaded" :
						 "the request was cancelled");
	else if (res->status != LG_OK)
		serve_send_error(r, serve_wire_status(res->status), "%s",
						 res->err.msg[0] ? res->err.msg : lg_status_name(res->status));
	else
	{
		serve_frame f = {0};

		serve_request_unlist(r);
		serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
		serve_frame_fieldf(&f, "n_embd", "%d", (int) j->n_embd);
		serve_frame_field(&f, "pooling", lg_pooling_name(j->pool));
		serve_frame_fieldf(&f, "n_prompt", "%d", (int) res->n_prompt);
		serve_frame_fieldf(&f, "n_truncated", "%d", (int) j->n_truncated);
		serve_frame_fieldf(&f, "t_queue_ms", "%.3f", res->t_queue_ms);
		serve_frame_fieldf(&f, "t_embed_ms", "%.3f", res->t_prompt_ms);
		for (int32_t i = 0; i < j->n_inputs; i++)
		{
			serve_frame_fieldf(&f, "n_tokens", "%d", (int) j->n_tokens[i]);
			serve_frame_append(&f, "embedding", 10);
			append_floats_b64(&f, j->out + (size_t) i * j->n_embd, j->n_embd);
		}
		if (f.oom)
			serve_send_error(r, LG_WIRE_NOMEM, "out of memory for the embeddings' reply");
		else
		{
			/* counted before the client hears of it, so a STATUS it sends next sees it */
			r->outcome = "stop";
			serve_metrics_embedded(r->metrics, j->n_inputs);
			serve_metrics_finish(r);
			serve_conn_send(r->conn, &f);
		}
		serve_frame_free(&f);
	}
	atomic_store(&r->state, SERVE_STATE_DONE);
	job_free(j);
	serve_request_put(r);
}

/* Admitted: the first inputs are being evaluated. */
static void
embed_state(void *arg, bool running)
{
	serve_embed_job *j = arg;

	atomic_store(&j->r->state, running ? SERVE_STATE_PROMPT : SERVE_STATE_QUEUED);
}

/* Tokenize one input with the model's special tokens; malloc'd, or NULL with err set. */
static lg_token *
tokenize_input(const lg_model *m, const char *text, int64_t *n, lg_error *err)
{
	size_t		len = strlen(text);
	int64_t		cap = (int64_t) len + 8;
	lg_token   *ids = malloc(sizeof(lg_token) * (size_t) cap);
	int64_t		need;

	if (ids == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	need = lg_tokenize(m->vocab, text, len, true, false, ids, cap, err);
	if (need > cap)
	{
		lg_token   *more = realloc(ids, sizeof(lg_token) * (size_t) need);

		if (more == NULL)
		{
			free(ids);
			lg_error_set(err, LG_ERR_NOMEM, "out of memory");
			return NULL;
		}
		ids = more;
		need = lg_tokenize(m->vocab, text, len, true, false, ids, need, err);
	}
	if (need < 0)
	{
		free(ids);
		if (err->status == LG_OK)
			lg_error_set(err, LG_ERR_FORMAT, "cannot tokenize the input");
		return NULL;
	}
	*n = need;
	return ids;
}

/*
 * EMBED: inputs (repeated "input"), pooling, normalize, truncate, priority.
 * True when submitted: embed_done answers, holding a reference on r.
 */
bool
serve_embed(serve_request *r, serve_model *sm)
{
	const lg_model *m = sm->model;
	lg_sched_embed_request er;
	serve_embed_job *j = NULL;
	lg_token  **ids = NULL;
	serve_embed_opts opts;
	char		msg[256];
	lg_error	err = {0};
	bool		normalize;
	bool		truncate;
	long long	priority;
	long long	base;			/* the number of the first input in messages */
	long long	n_ctx;			/* the request's context; 0 or more: the scheduler's */
	int32_t		n_inputs;
	int64_t		n_prompt = 0;
	uint64_t	sched_id = 0;
	bool		submitted = false;
	lg_status	st;

	memset(&er, 0, sizeof(er));
	r->metrics = serve_metrics_get(sm->name);
	if (!serve_embed_fields(&r->fields, &opts, msg, sizeof(msg)))
	{
		serve_send_error(r, LG_WIRE_ARG, "%s", msg);
		return false;
	}
	er.pool = opts.pool;
	normalize = opts.normalize;
	truncate = opts.truncate;
	priority = opts.priority;
	base = opts.base;
	n_ctx = opts.n_ctx;
	n_inputs = opts.n_inputs;
	if (n_ctx == 0 || n_ctx > sm->n_ctx)
		n_ctx = sm->n_ctx;

	/* the reply must fit one frame: base64 takes 4 bytes per 3 */
	if ((double) n_inputs * lg_model_n_embd(m) * 4 * 4 / 3 + (double) n_inputs * 64 > LG_PROTO_MAX_PAYLOAD)
	{
		serve_send_error_detail(r, LG_WIRE_ARG, NULL, "Send the inputs in several EMBED requests.",
								"%d inputs of %d floats do not fit one reply", (int) n_inputs,
								(int) lg_model_n_embd(m));
		return false;
	}
	j = calloc(1, sizeof(*j));
	ids = calloc((size_t) n_inputs, sizeof(*ids));
	if (j == NULL || ids == NULL ||
		(j->n_tokens = calloc((size_t) n_inputs, sizeof(int32_t))) == NULL ||
		(j->out = malloc(sizeof(float) * (size_t) n_inputs * (size_t) lg_model_n_embd(m))) == NULL)
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory for %d inputs", (int) n_inputs);
		goto done;
	}
	j->r = r;
	j->n_inputs = n_inputs;
	j->n_embd = lg_model_n_embd(m);
	j->pool = er.pool == LG_POOL_DEFAULT ? lg_model_pooling(m) : er.pool;
	for (int i = 0, k = 0; i < r->fields.n; i++)
	{
		int64_t		n = 0;

		if (strcmp(r->fields.keys[i], "input") != 0)
			continue;
		if (r->fields.values[i][0] == '\0')
		{
			serve_send_error(r, LG_WIRE_ARG, "input %lld is empty", base + k);
			goto done;
		}
		ids[k] = tokenize_input(m, r->fields.values[i], &n, &err);
		if (ids[k] == NULL)
		{
			serve_send_error(r, serve_wire_status(err.status), "input %lld: %s", base + k, err.msg);
			goto done;
		}
		if (n > n_ctx)
		{
			if (!truncate)
			{
				serve_send_error_detail(r, LG_WIRE_CONTEXT, NULL,
										"Shorten the input, or ask for truncation.",
										"input %lld has %lld tokens, the context holds %d",
										base + k, (long long) n, (int) n_ctx);
				goto done;
			}
			n = n_ctx;
			j->n_truncated++;
		}
		j->n_tokens[k] = (int32_t) n;
		n_prompt += n;
		k++;
	}
	atomic_store(&r->n_prompt, (int) (n_prompt < INT32_MAX ? n_prompt : INT32_MAX));

	er.inputs = (const lg_token *const *) ids;
	er.n_tokens = j->n_tokens;
	er.n_inputs = n_inputs;
	er.normalize = normalize;
	er.out = j->out;
	er.priority = (int32_t) priority;
	er.on_done = embed_done;
	er.on_state = embed_state;
	er.arg = j;
	/* the scheduler's reference, taken first: embed_done may run before submit returns */
	atomic_fetch_add(&r->refs, 1);
	st = lg_sched_submit_embed(sm->sched, &er, &sched_id, &err);
	if (st != LG_OK)
	{
		atomic_fetch_sub(&r->refs, 1);
		serve_send_error(r, serve_wire_status(st), "%s", err.msg);
		goto done;
	}
	submitted = true;
	atomic_store(&r->sched_id, sched_id);
	/* a cancel that came before the id was known did not reach the scheduler */
	if (atomic_load(&r->cancel))
		lg_sched_cancel(sm->sched, sched_id);

done:
	if (ids)
		for (int32_t i = 0; i < n_inputs; i++)
			free(ids[i]);
	free(ids);
	if (!submitted)
		job_free(j);
	return submitted;
}
