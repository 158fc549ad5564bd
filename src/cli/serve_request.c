/*
 * serve_request.c — the engine server's requests.  Each starts on a worker
 * thread of its own, which parses it, loads the model if needed and, for
 * TOKENIZE, INSPECT and the like, answers.  A GENERATE is tokenized there
 * and submitted to the model's scheduler; the worker then ends, and the
 * scheduler thread streams PIECE frames (on_piece) and sends END or ERROR
 * (on_done).  A request is freed when both have let go of it (refs).
 * Cancellation (CANCEL, a closed connection, timeout_ms, unloading) goes to
 * the scheduler, which drops the request between two steps, queued or
 * running.
 */
#include "serve.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "generate.h"
#include "sampler.h"
#include "vocab.h"

static pthread_mutex_t requests_lock = PTHREAD_MUTEX_INITIALIZER;
static serve_request *requests;		/* running, for STATUS and CANCEL */
static uint64_t next_seq = 1;

/* Monotonic time, for durations and deadlines. */
int64_t
serve_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Wall-clock time, for start times shown by STATUS. */
int64_t
serve_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void request_unlist(serve_request *r);

/* Wire name of an engine status. */
static const char *
status_wire_name(lg_status s)
{
	switch (s)
	{
		case LG_OK: return LG_WIRE_INTERNAL;
		case LG_ERR_IO: return LG_WIRE_IO;
		case LG_ERR_FORMAT: return LG_WIRE_FORMAT;
		case LG_ERR_UNSUPPORTED: return LG_WIRE_UNSUPPORTED;
		case LG_ERR_NOMEM: return LG_WIRE_NOMEM;
		case LG_ERR_ARG: return LG_WIRE_ARG;
		case LG_ERR_RANGE: return LG_WIRE_RANGE;
		case LG_ERR_CANCELLED: return LG_WIRE_CANCELLED;
		case LG_ERR_INTERNAL: return LG_WIRE_INTERNAL;
		case LG_ERR_BUSY: return LG_WIRE_BUSY;
	}
	return LG_WIRE_INTERNAL;
}

/* The wire name of an engine status (serve.h). */
const char *
serve_wire_status(lg_status s)
{
	return status_wire_name(s);
}

/* Send an ERROR frame for r: status, message, and detail and hint when given. */
static void
send_error_v(serve_request *r, const char *status, const char *detail, const char *hint,
			 const char *fmt, va_list ap)
{
	serve_frame f = {0};
	char		msg[LG_ERROR_MSG_LEN];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	serve_log(SERVE_LOG_DEBUG, "request %llu: %s: %s", (unsigned long long) r->seq, status, msg);
	if (r->outcome == NULL)
		r->outcome = status;
	/* counted before the client hears of it, so a STATUS it sends next sees it */
	if (r->type == LG_FRAME_GENERATE || r->type == LG_FRAME_EMBED)
		serve_metrics_finish(r);
	/* out of memory is an operator's problem whoever asked: always logged */
	if (strcmp(status, LG_WIRE_NOMEM) == 0)
		serve_log(SERVE_LOG_WARNING, "out of memory: %s (request %llu, model \"%s\", backend PID %d)",
				  msg, (unsigned long long) r->seq, r->model, r->backend_pid);
	/* an error ends the request: gone from STATUS before the client hears it */
	request_unlist(r);
	serve_frame_begin(&f, LG_FRAME_ERROR, r->id);
	serve_frame_field(&f, "status", status);
	serve_frame_field(&f, "message", msg);
	if (detail != NULL)
		serve_frame_field(&f, "detail", detail);
	if (hint != NULL)
		serve_frame_field(&f, "hint", hint);
	serve_conn_send(r->conn, &f);
	serve_frame_free(&f);
}

/* Send an ERROR frame for r. */
void
serve_send_error(serve_request *r, const char *status, const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	send_error_v(r, status, NULL, NULL, fmt, ap);
	va_end(ap);
}

/* Send an ERROR frame for r with detail and hint fields (either may be NULL). */
void
serve_send_error_detail(serve_request *r, const char *status, const char *detail,
						const char *hint, const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	send_error_v(r, status, detail, hint, fmt, ap);
	va_end(ap);
}

/* Send an ERROR frame from an engine error. */
static void
send_lg_error(serve_request *r, const lg_error *err)
{
	serve_send_error(r, status_wire_name(err->status), "%s",
					 err->msg[0] ? err->msg : lg_status_name(err->status));
}

/* ---- field parsing ---- */

/* Parse an integer field into *out (unchanged when absent); false if malformed. */
static bool
field_int(serve_request *r, const char *key, long long lo, long long hi, long long *out)
{
	const char *v = serve_fields_get(&r->fields, key);
	char	   *end;
	long long	x;

	if (v == NULL)
		return true;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
	{
		serve_send_error(r, LG_WIRE_ARG, "invalid value for %s: \"%s\"", key, v);
		return false;
	}
	*out = x;
	return true;
}

/* Parse a float field into *out (unchanged when absent); false if malformed. */
static bool
field_float(serve_request *r, const char *key, float *out)
{
	const char *v = serve_fields_get(&r->fields, key);
	char	   *end;
	double		x;

	if (v == NULL)
		return true;
	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || isnan(x))
	{
		serve_send_error(r, LG_WIRE_ARG, "invalid value for %s: \"%s\"", key, v);
		return false;
	}
	*out = (float) x;
	return true;
}

/* Parse "1,2,3" into a malloc'd array; false (error sent) if malformed. */
static bool
parse_token_list(serve_request *r, const char *v, lg_token **out, int64_t *n)
{
	int64_t		count = 0;
	int64_t		i = 0;
	const char *p;

	*out = NULL;
	*n = 0;
	if (*v == '\0')
		return true;
	for (p = v; *p; p++)
		if (*p == ',')
			count++;
	count++;
	*out = malloc(sizeof(lg_token) * (size_t) count);
	if (*out == NULL)
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
		return false;
	}
	p = v;
	while (i < count)
	{
		char	   *end;
		long long	x;

		errno = 0;
		x = strtoll(p, &end, 10);
		if (errno != 0 || end == p || (*end != ',' && *end != '\0') || x < INT32_MIN || x > INT32_MAX)
		{
			free(*out);
			*out = NULL;
			serve_send_error(r, LG_WIRE_PROTOCOL, "malformed token list");
			return false;
		}
		(*out)[i++] = (lg_token) x;
		p = (*end == ',') ? end + 1 : end;
	}
	*n = count;
	return true;
}

/*
 * Tokenize text (BOS as the model's rules say when add_special; special-token
 * text parsed when parse_special); malloc'd ids or NULL (error sent).
 */
static lg_token *
tokenize(serve_request *r, const lg_model *m, const char *text, bool add_special,
		 bool parse_special, int64_t *n)
{
	lg_error	err = {0};
	size_t		len = strlen(text);
	int64_t		cap = (int64_t) len + 8;
	lg_token   *ids = malloc(sizeof(lg_token) * (size_t) cap);
	int64_t		need;

	if (ids == NULL)
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
		return NULL;
	}
	need = lg_tokenize(m->vocab, text, len, add_special, parse_special, ids, cap, &err);
	if (need > cap)
	{
		lg_token   *more = realloc(ids, sizeof(lg_token) * (size_t) need);

		if (more == NULL)
		{
			free(ids);
			serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
			return NULL;
		}
		ids = more;
		need = lg_tokenize(m->vocab, text, len, add_special, parse_special, ids, need, &err);
	}
	if (need < 0)
	{
		free(ids);
		if (err.status == LG_OK)
			lg_error_set(&err, LG_ERR_FORMAT, "cannot tokenize the text");
		send_lg_error(r, &err);
		return NULL;
	}
	*n = need;
	return ids;
}

/* The model the request names (fields "model" and "path"); NULL with the error sent. */
static serve_model *
request_model(serve_request *r)
{
	lg_error	err = {0};
	const char *name = serve_fields_get(&r->fields, "model");
	const char *path = serve_fields_get(&r->fields, "path");
	serve_model *m;

	if (name == NULL || path == NULL)
	{
		serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks model or path");
		return NULL;
	}
	m = serve_model_acquire(name, path, &err);
	if (m == NULL)
		send_lg_error(r, &err);
	return m;
}

/* ---- generation ---- */

static void request_put(serve_request *r);
static void request_unlist(serve_request *r);

/* After every token: stream the piece, count, and decide whether to go on. */
static bool
on_piece(void *arg, const char *piece, size_t len)
{
	serve_request *r = arg;
	int64_t		now = serve_now_us();
	bool		first = atomic_load(&r->state) != SERVE_STATE_GENERATING;

	if (first)
	{
		r->gen_start_us = now;
		atomic_store(&r->state, SERVE_STATE_GENERATING);
	}
	atomic_fetch_add(&r->n_gen, 1);
	serve_metrics_token(r->metrics, first, now - (first ? r->arrive_us : r->last_token_us));
	r->last_token_us = now;
	if (len > 0 && !r->peer_gone)
	{
		serve_frame f = {0};

		serve_frame_begin(&f, LG_FRAME_PIECE, r->id);
		serve_frame_append(&f, piece, len);
		if (!serve_conn_send(r->conn, &f))
			r->peer_gone = true;
		serve_frame_free(&f);
	}
	if (r->deadline_us && serve_now_us() >= r->deadline_us)
		atomic_store(&r->timed_out, true);
	return !(r->peer_gone || atomic_load(&r->timed_out) || atomic_load(&r->cancel) ||
			 atomic_load(&r->conn->closed));
}

/* Admitted (prompt evaluation starts) or preempted back to the queue. */
static void
on_state(void *arg, bool running)
{
	serve_request *r = arg;

	atomic_store(&r->state, running ? SERVE_STATE_PROMPT : SERVE_STATE_QUEUED);
}

/* The generation ended: send END or ERROR, then let go of the request. */
static void
on_done(void *arg, const lg_sched_result *res)
{
	serve_request *r = arg;

	/* gone from STATUS before the client hears the end */
	request_unlist(r);
	serve_plugin_end(r);
	if (atomic_load(&r->timed_out))
		serve_send_error(r, LG_WIRE_TIMEOUT, "the request timed out after %d tokens",
						 atomic_load(&r->n_gen));
	else if (r->peer_gone || atomic_load(&r->conn->closed))
		serve_log(SERVE_LOG_DEBUG, "request %llu: client went away", (unsigned long long) r->seq);
	else if (res->status == LG_OK && res->finish == LG_FINISH_CANCELLED)
		serve_send_error(r, LG_WIRE_CANCELLED, "%s", atomic_load(&r->unloaded) ?
						 "the request was cancelled: its model was unloaded" :
						 "the request was cancelled");
	else if (r->plugin_failed)
		serve_send_error(r, LG_WIRE_PLUGIN, "%s", res->err.msg);
	else if (res->status == LG_ERR_FORMAT && r->grammar != NULL)
		serve_send_error_detail(r, LG_WIRE_GRAMMAR, NULL,
								"A grammar must leave some token of the model's vocabulary allowed until it is complete.",
								"%s", res->err.msg);
	else if (res->status != LG_OK)
		send_lg_error(r, &res->err);
	else
	{
		serve_frame f = {0};
		lg_buf		msg;
		int			n_calls = 0;

		lg_buf_init(&msg);
		if (r->chat && !serve_chat_message(r, res->text, res->text_len, &msg, &n_calls,
										   res->finish == LG_FINISH_LENGTH))
		{
			serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
			lg_buf_free(&msg);
			atomic_store(&r->state, SERVE_STATE_DONE);
			request_put(r);
			return;
		}
		serve_frame_begin(&f, LG_FRAME_END, r->id);
		/* calls kept from an answer cut short still say "length": the answer did not end */
		r->outcome = n_calls > 0 && res->finish != LG_FINISH_LENGTH ?
			"tool_calls" : lg_finish_reason_name(res->finish);
		serve_frame_field(&f, "finish", r->outcome);
		serve_metrics_finish(r);
		if (r->chat)
			serve_frame_field(&f, "message", msg.data);
		lg_buf_free(&msg);
		serve_frame_fieldf(&f, "n_prompt", "%d", (int) res->n_prompt);
		serve_frame_fieldf(&f, "n_gen", "%d", (int) res->n_ids);
		serve_frame_fieldf(&f, "t_prompt_ms", "%.3f", res->t_prompt_ms);
		serve_frame_fieldf(&f, "t_gen_ms", "%.3f", res->t_gen_ms);
		serve_frame_fieldf(&f, "n_cached", "%d", (int) res->n_cached);
		serve_frame_fieldf(&f, "n_preempted", "%d", (int) res->n_preempted);
		serve_frame_fieldf(&f, "t_queue_ms", "%.3f", res->t_queue_ms);
		serve_frame_fieldf(&f, "t_first_ms", "%.3f", res->t_first_ms);
		serve_conn_send(r->conn, &f);
		serve_frame_free(&f);
	}
	atomic_store(&r->state, SERVE_STATE_DONE);
	request_put(r);
}

/*
 * GENERATE: prompt, sampler settings, stop strings; submits to the model's
 * scheduler.  True when submitted: on_done answers (and the scheduler holds
 * a reference on r until then).
 */
static bool
do_generate(serve_request *r, serve_model *sm)
{
	const lg_model *m = sm->model;
	const char *prompt;
	lg_buf		rendered;
	bool		chat = false;
	bool		add_bos = true;
	lg_sampler_params sp;
	lg_sched_request sr;
	lg_error	err = {0};
	lg_logit_bias *bias = NULL;
	const char **stops = NULL;
	lg_token   *ids = NULL;
	int64_t		n_ids = 0;
	long long	v;
	int32_t		n_ctx;
	uint64_t	sched_id = 0;
	bool		submitted = false;
	lg_status	st;

	memset(&sr, 0, sizeof(sr));
	lg_buf_init(&rendered);
	r->metrics = serve_metrics_get(sm->name);
	/* the constraint first: bad tools are reported before the template runs on them */
	serve_chat_detect(r, sm);
	if (!serve_generate_constraint(r, sm, &sr))
		goto done;
	prompt = serve_generate_prompt(r, sm, &rendered, &chat, &add_bos);
	if (prompt == NULL)
		goto done;

	lg_sampler_params_default(&sp);
	v = 256;
	if (!field_int(r, "max_tokens", 1, INT32_MAX, &v))
		goto done;
	sr.gen.max_tokens = (int32_t) v;
	v = 0;
	if (!field_int(r, "priority", -1000000, 1000000, &v))
		goto done;
	sr.priority = (int32_t) v;
	v = sp.top_k;
	if (!field_int(r, "top_k", INT32_MIN, INT32_MAX, &v))
		goto done;
	sp.top_k = (int32_t) v;
	v = sp.penalty_last_n;
	if (!field_int(r, "penalty_last_n", -1, INT32_MAX, &v))
		goto done;
	sp.penalty_last_n = (int32_t) v;
	if (!field_float(r, "temperature", &sp.temperature) ||
		!field_float(r, "top_p", &sp.top_p) ||
		!field_float(r, "min_p", &sp.min_p) ||
		!field_float(r, "typical_p", &sp.typical_p) ||
		!field_float(r, "repeat_penalty", &sp.repeat_penalty) ||
		!field_float(r, "presence_penalty", &sp.presence_penalty) ||
		!field_float(r, "frequency_penalty", &sp.frequency_penalty))
		goto done;
	if (serve_fields_get(&r->fields, "seed"))
	{
		const char *sv = serve_fields_get(&r->fields, "seed");
		char	   *end;

		errno = 0;
		sp.seed = strtoull(sv, &end, 10);
		if (errno != 0 || end == sv || *end != '\0')
		{
			serve_send_error(r, LG_WIRE_ARG, "invalid value for seed: \"%s\"", sv);
			goto done;
		}
		sp.has_seed = true;
	}

	/* repeated fields: stop strings and logit biases ("token:bias") */
	stops = calloc((size_t) r->fields.n + 1, sizeof(char *));
	bias = calloc((size_t) r->fields.n + 1, sizeof(lg_logit_bias));
	if (stops == NULL || bias == NULL)
	{
		serve_send_error(r, LG_WIRE_NOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < r->fields.n; i++)
	{
		if (strcmp(r->fields.keys[i], "stop") == 0)
			stops[sr.gen.n_stops++] = r->fields.values[i];
		else if (strcmp(r->fields.keys[i], "logit_bias") == 0)
		{
			const char *bv = r->fields.values[i];
			char	   *end;
			long		t;
			double		b;

			errno = 0;
			t = strtol(bv, &end, 10);
			if (errno != 0 || *end != ':' || t < 0 || t >= m->hp.n_vocab)
			{
				serve_send_error(r, LG_WIRE_RANGE, "token %ld in logit_bias is not in the vocabulary (%d tokens)",
								 t, (int) m->hp.n_vocab);
				goto done;
			}
			b = strtod(end + 1, &end);
			if (*end != '\0' || isnan(b))
			{
				serve_send_error(r, LG_WIRE_ARG, "invalid logit_bias \"%s\"", bv);
				goto done;
			}
			bias[sp.n_logit_bias].token = (lg_token) t;
			bias[sp.n_logit_bias].bias = (float) b;
			sp.n_logit_bias++;
		}
	}
	sr.gen.stops = stops;
	sp.logit_bias = bias;
	if (lg_sampler_params_check(&sp, &err) != LG_OK)
	{
		send_lg_error(r, &err);
		goto done;
	}

	ids = tokenize(r, m, prompt, add_bos, chat, &n_ids);
	if (ids == NULL)
		goto done;
	if (!serve_plugin_begin(r, sm, &sr))
		goto done;
	atomic_store(&r->n_prompt, (int) n_ids);

	/* the context: the request's size, else the server's, at most the scheduler's */
	v = 0;
	if (!field_int(r, "n_ctx", 0, INT32_MAX, &v))
		goto done;
	n_ctx = v > 0 && v < sm->n_ctx ? (int32_t) v : sm->n_ctx;
	if (n_ids >= n_ctx)
	{
		serve_send_error(r, LG_WIRE_CONTEXT,
						 "the prompt has %lld tokens, the context holds %d",
						 (long long) n_ids, (int) n_ctx);
		goto done;
	}

	sr.prompt = ids;
	sr.n_prompt = (int32_t) n_ids;
	sr.n_ctx = n_ctx;
	sr.sampling = &sp;
	sr.on_piece = on_piece;
	sr.on_done = on_done;
	sr.on_state = on_state;
	sr.arg = r;
	/* the scheduler's reference, taken first: on_done may run before submit returns */
	atomic_fetch_add(&r->refs, 1);
	st = lg_sched_submit(sm->sched, &sr, &sched_id, &err);
	if (st != LG_OK)
	{
		atomic_fetch_sub(&r->refs, 1);
		if (st == LG_ERR_BUSY)
			serve_send_error(r, LG_WIRE_BUSY, "%s", err.msg);
		else
			send_lg_error(r, &err);
		goto done;
	}
	submitted = true;
	atomic_store(&r->sched_id, sched_id);
	/* a cancel that came before the id was known did not reach the scheduler */
	if (atomic_load(&r->cancel))
		lg_sched_cancel(sm->sched, sched_id);

done:
	if (!submitted)
		serve_plugin_end(r);
	lg_buf_free(&rendered);
	free(ids);
	free(stops);
	free(bias);
	return submitted;
}

/* TOKENIZE: text [, add_special] -> tokens "1,2,3", n. */
static void
do_tokenize(serve_request *r, serve_model *sm)
{
	const char *text = serve_fields_get(&r->fields, "text");
	const char *as = serve_fields_get(&r->fields, "add_special");
	lg_token   *ids;
	int64_t		n = 0;
	serve_frame f = {0};

	if (text == NULL)
	{
		serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks text");
		return;
	}
	ids = tokenize(r, sm->model, text, as == NULL || strcmp(as, "0") != 0, false, &n);
	if (ids == NULL)
		return;
	serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
	serve_frame_fieldf(&f, "n", "%lld", (long long) n);
	serve_frame_append(&f, "tokens", 7);
	for (int64_t i = 0; i < n; i++)
	{
		char		num[16];
		int			len = snprintf(num, sizeof(num), i ? ",%d" : "%d", (int) ids[i]);

		serve_frame_append(&f, num, (size_t) len);
	}
	serve_frame_append(&f, "", 1);
	serve_conn_send(r->conn, &f);
	serve_frame_free(&f);
	free(ids);
}

/* DETOKENIZE: tokens "1,2,3" -> text. */
static void
do_detokenize(serve_request *r, serve_model *sm)
{
	const char *list = serve_fields_get(&r->fields, "tokens");
	const lg_vocab *vocab = sm->model->vocab;
	int32_t		n_vocab = lg_vocab_n_tokens(vocab);
	lg_token   *ids;
	int64_t		n;
	int64_t		need;
	char	   *text;
	serve_frame f = {0};

	if (list == NULL)
	{
		serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks tokens");
		return;
	}
	if (!parse_token_list(r, list, &ids, &n))
		return;
	for (int64_t i = 0; i < n; i++)
	{
		if (ids[i] < 0 || ids[i] >= n_vocab)
		{
			serve_send_error(r, LG_WIRE_RANGE, "token %d is not in the vocabulary (%d tokens)",
							 (int) ids[i], (int) n_vocab);
			free(ids);
			return;
		}
	}
	/*
	 * llm_detokenize is the inverse of llm_tokenize: drop a leading BOS
	 * ourselves and detokenize the rest as plain text, so SentencePiece's
	 * added leading space goes too (llama.cpp's remove_special keeps it
	 * when it removes BOS).  Other control tokens render as nothing.
	 */
	if (n > 0 && ids[0] == lg_vocab_bos(vocab))
	{
		memmove(ids, ids + 1, sizeof(ids[0]) * (n - 1));
		n--;
	}
	need = lg_detokenize(vocab, ids, n, NULL, 0, false, false);
	if (need < 0 || (text = malloc((size_t) need + 1)) == NULL)
	{
		serve_send_error(r, need < 0 ? LG_WIRE_RANGE : LG_WIRE_NOMEM, "cannot detokenize");
		free(ids);
		return;
	}
	lg_detokenize(vocab, ids, n, text, need + 1, false, false);
	text[need] = '\0';
	serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
	serve_frame_append(&f, "text", 5);
	serve_frame_append(&f, text, strlen(text));	/* a NUL byte would end the field */
	serve_frame_append(&f, "", 1);
	serve_conn_send(r->conn, &f);
	serve_frame_free(&f);
	free(text);
	free(ids);
}

/* INSPECT: path -> what the registry records (loading it validates every tensor). */
static void
do_inspect(serve_request *r)
{
	const char *path = serve_fields_get(&r->fields, "path");
	lg_error	err = {0};
	lg_model   *m;
	serve_frame f = {0};
	const lg_hparams *hp;

	if (path == NULL)
	{
		serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks path");
		return;
	}
	m = lg_model_load(path, &err);
	if (m == NULL)
	{
		send_lg_error(r, &err);
		return;
	}
	hp = &m->hp;
	serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
	serve_frame_field(&f, "architecture", hp->arch_name[0] ? hp->arch_name : lg_arch_name(hp->arch));
	serve_frame_field(&f, "name", hp->name);
	serve_frame_fieldf(&f, "parameters", "%lld", (long long) hp->n_params);
	serve_frame_field(&f, "quantization", hp->ftype_name[0] ? hp->ftype_name :
					  (lg_type_get(hp->main_type)->name ? lg_type_get(hp->main_type)->name : "unknown"));
	serve_frame_fieldf(&f, "context_length", "%d", (int) hp->n_ctx_train);
	serve_frame_fieldf(&f, "n_vocab", "%d", (int) hp->n_vocab);
	serve_frame_fieldf(&f, "n_layer", "%d", (int) hp->n_layer);
	serve_frame_fieldf(&f, "n_embd", "%d", (int) hp->n_embd);
	serve_frame_fieldf(&f, "file_size", "%llu", (unsigned long long) m->file_size);
	serve_conn_send(r->conn, &f);
	serve_frame_free(&f);
	lg_model_free(m);
}

/* STATUS: one "request" field per running request, one "model" per loaded model. */
static void
do_status(serve_request *r)
{
	serve_frame f = {0};
	int64_t		now = serve_now_us();

	/* reset first: the reply shows the counters starting again */
	if (serve_fields_get(&r->fields, "reset") != NULL && strcmp(serve_fields_get(&r->fields, "reset"), "1") == 0)
		serve_metrics_reset();
	serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
	serve_frame_fieldf(&f, "pid", "%d", (int) getpid());
	pthread_mutex_lock(&requests_lock);
	for (serve_request *q = requests; q != NULL; q = q->next)
	{
		static const char *const names[] = {"queued", "prompt", "generating", "done"};
		int			state = atomic_load(&q->state);
		int			n_gen = atomic_load(&q->n_gen);
		double		tps = 0;

		if (q->type != LG_FRAME_GENERATE && q->type != LG_FRAME_EMBED)
			continue;
		if (state == SERVE_STATE_GENERATING && now > q->gen_start_us && n_gen > 1)
			tps = (n_gen - 1) / ((now - q->gen_start_us) / 1e6);
		serve_frame_fieldf(&f, "request", "%llu\t%d\t%s\t%s\t%s\t%d\t%d\t%lld\t%.3f",
						   (unsigned long long) q->seq, q->backend_pid, q->role, q->model,
						   atomic_load(&q->cancel) ? "cancelling" : names[state],
						   atomic_load(&q->n_prompt), n_gen, (long long) q->start_us, tps);
	}
	pthread_mutex_unlock(&requests_lock);
	serve_models_describe(&f);
	serve_plugins_describe(&f);
	{
		int			entries;
		int64_t		hits;
		int64_t		misses;

		serve_grammar_stats(&entries, &hits, &misses);
		serve_frame_fieldf(&f, "grammar_cache", "%d\t%lld\t%lld", entries, (long long) hits,
						   (long long) misses);
	}
	serve_metrics_describe(&f);
	serve_conn_send(r->conn, &f);
	serve_frame_free(&f);
}

/* Copy a field into a fixed buffer, replacing tabs (STATUS separates with them). */
static void
copy_label(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
	for (char *p = dst; *p; p++)
		if (*p == '\t' || *p == '\n')
			*p = ' ';
}

/* Take r out of the list STATUS and the cancel paths walk (once). */
static void
request_unlist(serve_request *r)
{
	pthread_mutex_lock(&requests_lock);
	if (!r->unlisted)
	{
		if (r->prev)
			r->prev->next = r->next;
		else
			requests = r->next;
		if (r->next)
			r->next->prev = r->prev;
		r->unlisted = true;
	}
	pthread_mutex_unlock(&requests_lock);
}

/* Drop a reference to r; the last one unlists and frees it. */
static void
request_put(serve_request *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	request_unlist(r);

	serve_log(SERVE_LOG_DEBUG, "request %llu done", (unsigned long long) r->seq);
	/* a request that ended without a reply (its client went away) is counted now */
	if (r->type == LG_FRAME_GENERATE || r->type == LG_FRAME_EMBED)
		serve_metrics_finish(r);
	serve_grammar_release(r->grammar);
	if (r->sm)
		serve_model_release(r->sm);
	serve_conn_release(r->conn);
	serve_fields_free(&r->fields);
	free(r->payload);
	free(r);
}

/* Take r out of STATUS (serve.h). */
void
serve_request_unlist(serve_request *r)
{
	request_unlist(r);
}

/* Drop a reference to r (serve.h). */
void
serve_request_put(serve_request *r)
{
	request_put(r);
}

/* The worker thread. */
static void *
request_main(void *arg)
{
	serve_request *r = arg;
	serve_model *sm = NULL;

	serve_log_backend_pid = r->backend_pid;

	/* a remote model has no weights here: its requests go to the provider */
	if (serve_provider_is_remote(r) && r->type != LG_FRAME_UNLOAD && r->type != LG_FRAME_STATUS)
	{
		serve_provider_request(r);
		request_put(r);
		return NULL;
	}
	switch (r->type)
	{
		case LG_FRAME_GENERATE:
		case LG_FRAME_TOKENIZE:
		case LG_FRAME_DETOKENIZE:
		case LG_FRAME_LOAD:
		case LG_FRAME_EMBED:
			sm = request_model(r);
			if (sm == NULL)
				break;
			/* published under the lock: the cancel paths read it */
			pthread_mutex_lock(&requests_lock);
			r->sm = sm;
			pthread_mutex_unlock(&requests_lock);
			if (r->type == LG_FRAME_GENERATE)
				do_generate(r, sm);
			else if (r->type == LG_FRAME_EMBED)
				serve_embed(r, sm);
			else if (r->type == LG_FRAME_TOKENIZE)
				do_tokenize(r, sm);
			else if (r->type == LG_FRAME_DETOKENIZE)
				do_detokenize(r, sm);
			else
			{
				serve_frame f = {0};

				serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
				serve_frame_field(&f, "loaded", "1");
				serve_conn_send(r->conn, &f);
				serve_frame_free(&f);
			}
			break;
		case LG_FRAME_UNLOAD:
			{
				const char *name = serve_fields_get(&r->fields, "model");
				serve_frame f = {0};

				if (name == NULL)
				{
					serve_send_error(r, LG_WIRE_PROTOCOL, "request lacks model");
					break;
				}
				serve_frame_begin(&f, LG_FRAME_RESULT, r->id);
				serve_frame_field(&f, "unloaded", serve_model_unload(name) ? "1" : "0");
				serve_conn_send(r->conn, &f);
				serve_frame_free(&f);
				break;
			}
		case LG_FRAME_INSPECT:
			do_inspect(r);
			break;
		case LG_FRAME_STATUS:
			do_status(r);
			break;
		default:
			serve_send_error(r, LG_WIRE_PROTOCOL, "unknown frame type %d", r->type);
			break;
	}
	request_put(r);
	return NULL;
}

/* Register r and start its worker thread; false (r freed by the caller) on failure. */
bool
serve_request_start(serve_request *r)
{
	pthread_attr_t attr;
	pthread_t	th;
	long long	v = 0;
	const char *s;

	atomic_init(&r->cancel, false);
	atomic_init(&r->timed_out, false);
	atomic_init(&r->unloaded, false);
	atomic_init(&r->refs, 1);
	atomic_init(&r->sched_id, 0);
	atomic_init(&r->state, SERVE_STATE_QUEUED);
	atomic_init(&r->n_prompt, 0);
	atomic_init(&r->n_gen, 0);
	r->sm = NULL;
	r->grammar = NULL;
	r->chat = false;
	r->chat_format = 0;
	r->peer_gone = false;
	r->unlisted = false;
	r->metrics = NULL;
	r->outcome = NULL;
	atomic_init(&r->counted, false);
	r->arrive_us = serve_now_us();
	r->last_token_us = r->arrive_us;
	r->start_us = serve_wall_us();
	copy_label(r->role, sizeof(r->role), serve_fields_get(&r->fields, "role"));
	copy_label(r->model, sizeof(r->model), serve_fields_get(&r->fields, "model"));
	if ((s = serve_fields_get(&r->fields, "backend_pid")) != NULL)
		r->backend_pid = atoi(s);
	/* the session's llamagpu.log_min_duration, else the server's --log-min-duration-ms */
	r->log_min_duration_ms = serve_opts.log_min_duration_ms;
	if ((s = serve_fields_get(&r->fields, "log_min_duration_ms")) != NULL)
		r->log_min_duration_ms = atoi(s) < 0 ? -1 : atoi(s);
	if ((s = serve_fields_get(&r->fields, "timeout_ms")) != NULL && (v = atoll(s)) > 0)
		r->deadline_us = serve_now_us() + v * 1000;

	pthread_mutex_lock(&requests_lock);
	r->seq = next_seq++;
	r->prev = NULL;
	r->next = requests;
	if (requests)
		requests->prev = r;
	requests = r;
	pthread_mutex_unlock(&requests_lock);

	atomic_fetch_add(&r->conn->refs, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, request_main, r) != 0)
	{
		pthread_attr_destroy(&attr);
		pthread_mutex_lock(&requests_lock);
		if (r->prev)
			r->prev->next = r->next;
		else
			requests = r->next;
		if (r->next)
			r->next->prev = r->prev;
		pthread_mutex_unlock(&requests_lock);
		atomic_fetch_sub(&r->conn->refs, 1);
		return false;
	}
	pthread_attr_destroy(&attr);
	return true;
}

/* Mark q cancelled and tell its scheduler, if it was submitted (requests_lock held). */
static void
cancel_locked(serve_request *q)
{
	uint64_t	id;

	atomic_store(&q->cancel, true);
	id = atomic_load(&q->sched_id);
	if (id != 0 && q->sm != NULL)
		lg_sched_cancel(q->sm->sched, id);
}

/* Cancel conn's request id (or all of conn's requests). */
void
serve_requests_cancel(serve_conn *c, uint32_t id, bool any_id)
{
	pthread_mutex_lock(&requests_lock);
	for (serve_request *q = requests; q != NULL; q = q->next)
		if (q->conn == c && (any_id || q->id == id))
			cancel_locked(q);
	pthread_mutex_unlock(&requests_lock);
}

/* Cancel every request (shutdown). */
void
serve_requests_cancel_all(void)
{
	pthread_mutex_lock(&requests_lock);
	for (serve_request *q = requests; q != NULL; q = q->next)
		cancel_locked(q);
	pthread_mutex_unlock(&requests_lock);
}

/* Cancel the requests that use m (it is being unloaded). */
void
serve_requests_cancel_model(serve_model *m)
{
	pthread_mutex_lock(&requests_lock);
	for (serve_request *q = requests; q != NULL; q = q->next)
	{
		if (q->sm != m)
			continue;
		atomic_store(&q->unloaded, true);
		cancel_locked(q);
	}
	pthread_mutex_unlock(&requests_lock);
}

/* Time out requests past their deadline, waiting in a queue or running. */
void
serve_requests_expire(void)
{
	int64_t		now = serve_now_us();

	pthread_mutex_lock(&requests_lock);
	for (serve_request *q = requests; q != NULL; q = q->next)
	{
		if (q->deadline_us == 0 || now < q->deadline_us || atomic_load(&q->timed_out))
			continue;
		atomic_store(&q->timed_out, true);
		cancel_locked(q);
	}
	pthread_mutex_unlock(&requests_lock);
}

/* Number of requests not yet finished. */
int
serve_requests_running(void)
{
	int			n = 0;

	pthread_mutex_lock(&requests_lock);
	for (serve_request *q = requests; q != NULL; q = q->next)
		n++;
	pthread_mutex_unlock(&requests_lock);
	return n;
}
