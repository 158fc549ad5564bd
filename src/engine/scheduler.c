/*
 * scheduler.c — continuous batching (see scheduler.h).
 *
 * A request is a sched_seq.  Its tokens[] are the prompt followed by the
 * ids sampled so far; kv.n_pos of them have K/V in the pool.  Whatever is
 * not yet evaluated is evaluated next, and when an evaluation reaches the
 * end of tokens[] its logits give the next id.  So decoding (one token a
 * step) and prefill (a prompt chunk a step) are the same thing, and a
 * preempted sequence needs nothing but its blocks released: on readmission
 * it recomputes its whole history (mostly from the prefix cache) and goes
 * on sampling with the sampler, stream and grammar matcher it kept (the
 * recomputed tokens are never sampled again, so the matcher's state is
 * exactly right).
 *
 * Step composition, in rank order (priority, then admission order):
 *   1. every running sequence that decodes: one token;
 *   2. every running sequence that prefills: a chunk, within the budget;
 *   3. admissions from the wait queue, best effective priority first,
 *      while the budget, max_seqs and the pool allow (none in a step that
 *      preempted).
 * Blocks are reserved before the forward pass.  When a running sequence
 * cannot get one, the lowest-ranked running sequence is preempted — the
 * sequence itself when it is the lowest — so the highest-ranked always
 * advances and nothing deadlocks; one that cannot fit the pool even alone
 * fails.
 *
 * Aging: effective priority = priority + waited_ms / aging_ms, waited_ms
 * counted from submit (so a preempted request keeps its seniority).  A
 * request of priority 0 overtakes newly submitted ones of priority k after
 * waiting k * aging_ms: nothing starves while higher priorities keep
 * coming.  Ties go to preempted requests, then to the oldest.
 *
 * Embedding requests (sched_embed) stay in the wait queue until their
 * last input is evaluated; a step plans whole inputs of them after the
 * generation admissions would have (same ranking), evaluates them with
 * lg_context_embed after the generation batch, and ages them from their
 * last step rather than from submit (so they take turns, see scheduler.h).
 *
 * Locking: s->lock guards the two lists, the cancel flags and the
 * counters.  The KV cache, the context and the sequences' contents are the
 * stepping thread's alone; the lock is dropped for the forward pass and
 * the callbacks.
 */
#include "scheduler.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammar.h"
#include "stream.h"

#define SCHED_MAX_BATCH_DEFAULT 512
#define SCHED_MAX_SEQS_DEFAULT	64
#define SCHED_MAX_QUEUED_DEFAULT 256
#define SCHED_AGING_MS_DEFAULT	1000

/* The inputs of an embedding request and how far it got. */
typedef struct sched_embed
{
	lg_token  **inputs;			/* [n_inputs] copies */
	int32_t    *n_tokens;
	int32_t		n_inputs;
	int32_t		next;			/* inputs before it are done */
	int32_t		step_end;		/* this step evaluates next .. step_end - 1 */
	int64_t		n_total;		/* tokens in all inputs */
	lg_pooling	pool;			/* resolved: never LG_POOL_DEFAULT */
	bool		normalize;
	bool		started;		/* some step planned it (no longer "queued") */
	float	   *out;
	double		t_aging;		/* aging counts from here: submit, then its last step */
} sched_embed;

typedef struct sched_seq
{
	uint64_t	id;
	int32_t		priority;
	int32_t		n_ctx;			/* positions at most */
	lg_token   *tokens;			/* [n_prompt + max_tokens + 1]: prompt, then sampled ids */
	int32_t		n_tokens;
	int32_t		n_prompt;		/* the request's prompt */
	lg_kv_seq	kv;				/* kv.n_pos of tokens[] evaluated */
	bool		decoding;		/* sampled since its last admission */
	bool		admitted;		/* admitted at least once */
	bool		preempted;		/* waiting again after a preemption */
	bool		cancel;			/* lg_sched_cancel asked (under the lock) */
	int64_t		admit_order;	/* rank among equal priorities: earlier admitted first */
	lg_sampler *sampler;
	lg_grammar_matcher *matcher;	/* the request's grammar state, or NULL; gp.grammar */
	lg_generate_params gp;		/* stops point into stops[] */
	char	  **stops;
	lg_stream	stream;
	lg_piece_fn on_piece;
	lg_sched_done_fn on_done;
	lg_sched_state_fn on_state;
	lg_sched_logits_fn on_logits;
	void	   *arg;
	bool		reported_running;	/* the last on_state said running */
	int32_t		n_cached;		/* prefix-cache hit at the first admission */
	int32_t		n_preempted;
	double		t_submit;
	double		t_admit;
	double		t_first;
	lg_error	fail;			/* why it failed during planning */
	/* this step's share of the batch */
	int32_t		n_step;
	struct sched_seq *next_done;
	struct sched_seq *next_preempted;	/* preempted during this step's planning */
	sched_embed *embed;			/* an embedding request, or NULL */
} sched_seq;

struct lg_sched
{
	const lg_model *model;
	lg_sched_params p;
	lg_kv_cache *kv;
	lg_context *ctx;
	lg_backend *be;				/* the context's backend */
	lg_device_sample *dev_params;	/* [max_seqs] a step's device sampling, by logits row */
	lg_token   *dev_ids;		/* [max_seqs] the tokens the device drew */
	bool		own_be;			/* made here from p.device */
	int32_t		n_vocab;
	int32_t		block_size;
	int32_t		n_blocks;		/* the pool's, fixed (read without the lock) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	sched_seq **queue;			/* waiting, unordered */
	int32_t		n_queue;
	int32_t		cap_queue;
	sched_seq **run;			/* admitted, holding blocks; rank order after planning */
	int32_t		n_run;
	uint64_t	next_id;
	int64_t		admit_counter;
	sched_seq  *preempted;		/* this step's, for on_state after the lock */
	lg_sched_stats stats;		/* counters; n_queued/n_running filled on read */

	/* the stepping thread's scratch */
	lg_batch_seq *batch;		/* [max_seqs] */
	sched_seq **owners;			/* [max_seqs] */
	sched_seq **embeds;			/* [cap_embeds] this step's embedding requests */
	int32_t		n_embeds;
	int32_t		cap_embeds;
	float	   *logits;			/* [max_seqs][n_vocab] */
};

/* Milliseconds on the monotonic clock. */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void
lg_sched_params_default(lg_sched_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_batch_tokens = SCHED_MAX_BATCH_DEFAULT;
	p->max_seqs = SCHED_MAX_SEQS_DEFAULT;
	p->max_queued = SCHED_MAX_QUEUED_DEFAULT;
	p->kv.block_size = LG_KV_BLOCK_SIZE_DEFAULT;
	p->kv.prefix_cache = true;
	p->aging_ms = SCHED_AGING_MS_DEFAULT;
}

/* Free a sequence that is in no list. */
static void
seq_free(sched_seq *q)
{
	if (q == NULL)
		return;
	if (q->stops)
	{
		for (int32_t i = 0; i < q->gp.n_stops; i++)
			free(q->stops[i]);
		free(q->stops);
	}
	lg_stream_free(&q->stream);
	lg_sampler_free(q->sampler);
	lg_grammar_matcher_free(q->matcher);
	if (q->embed)
	{
		for (int32_t i = 0; i < q->embed->n_inputs; i++)
			free(q->embed->inputs[i]);
		free(q->embed->inputs);
		free(q->embed->n_tokens);
		free(q->embed);
	}
	free(q->kv.blocks);
	free(q->tokens);
	free(q);
}

lg_sched *
lg_sched_new(const lg_model *m, const lg_sched_params *params, lg_error *err)
{
	lg_sched_params p;
	lg_context_params cp;
	lg_sched   *s;

	if (params == NULL)
		lg_sched_params_default(&p);
	else
		p = *params;
	if (p.max_batch_tokens < 0 || p.max_seqs < 0 || p.max_queued < 0 || p.n_ctx < 0 ||
		p.aging_ms < 0 || p.kv.block_size < 0 || p.kv.n_blocks < 0 || p.kv.max_bytes < 0)
	{
		lg_error_set(err, LG_ERR_ARG, "scheduler settings must not be negative");
		return NULL;
	}
	if (p.max_batch_tokens == 0)
		p.max_batch_tokens = SCHED_MAX_BATCH_DEFAULT;
	if (p.max_seqs == 0)
		p.max_seqs = SCHED_MAX_SEQS_DEFAULT;
	/* every running sequence must be able to decode in the same step */
	if (p.max_seqs > p.max_batch_tokens)
		p.max_seqs = p.max_batch_tokens;
	if (p.max_queued == 0)
		p.max_queued = SCHED_MAX_QUEUED_DEFAULT;
	if (p.aging_ms == 0)
		p.aging_ms = SCHED_AGING_MS_DEFAULT;
	if (p.n_ctx == 0)
		p.n_ctx = m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
	if (p.kv.block_size == 0)
		p.kv.block_size = LG_KV_BLOCK_SIZE_DEFAULT;
	if (p.kv.n_blocks == 0 && p.kv.max_bytes == 0)
		p.kv.n_blocks = p.max_seqs * ((p.n_ctx + p.kv.block_size - 1) / p.kv.block_size);

	s = calloc(1, sizeof(*s));
	if (s == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	s->model = m;
	s->p = p;
	s->n_vocab = m->hp.n_vocab;
	s->next_id = 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->cap_queue = p.max_queued + p.max_seqs;	/* preempted ones may exceed max_queued */
	s->queue = calloc((size_t) s->cap_queue, sizeof(*s->queue));
	s->run = calloc((size_t) p.max_seqs, sizeof(*s->run));
	s->batch = calloc((size_t) p.max_seqs, sizeof(*s->batch));
	s->owners = calloc((size_t) p.max_seqs, sizeof(*s->owners));
	s->cap_embeds = 16;
	s->embeds = calloc((size_t) s->cap_embeds, sizeof(*s->embeds));
	s->logits = malloc(sizeof(float) * (size_t) p.max_seqs * (size_t) s->n_vocab);
	s->dev_params = calloc((size_t) p.max_seqs, sizeof(*s->dev_params));
	s->dev_ids = calloc((size_t) p.max_seqs, sizeof(*s->dev_ids));
	if (!s->queue || !s->run || !s->batch || !s->owners || !s->embeds || !s->logits || !s->dev_params || !s->dev_ids)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory for a scheduler of %d sequences", (int) p.max_seqs);
		lg_sched_free(s);
		return NULL;
	}
	/* the backend first: the KV pools live in its memory */
	s->be = p.backend;
	if (s->be == NULL)
	{
		s->be = lg_backend_open(p.device ? p.device : "cpu", p.n_threads, err);
		if (s->be == NULL)
		{
			lg_sched_free(s);
			return NULL;
		}
		s->own_be = true;
	}
	p.kv.backend = lg_backend_is_host(s->be) ? NULL : s->be;
	s->p.kv.backend = p.kv.backend;
	s->kv = lg_kv_cache_new(m, &p.kv, err);
	if (s->kv == NULL)
	{
		lg_sched_free(s);
		return NULL;
	}
	s->block_size = lg_kv_cache_block_size(s->kv);
	lg_context_params_default(&cp);
	cp.n_ctx = p.n_ctx;
	cp.n_batch = p.max_batch_tokens;
	cp.kv_type = lg_kv_cache_type(s->kv);
	cp.n_threads = p.n_threads;
	cp.backend = s->be;
	cp.kv = s->kv;
	s->ctx = lg_context_new(m, &cp, err);
	if (s->ctx == NULL)
	{
		lg_sched_free(s);
		return NULL;
	}
	s->stats.max_batch_tokens = p.max_batch_tokens;
	lg_kv_cache_stats(s->kv, &s->stats.kv);
	s->n_blocks = s->stats.kv.n_blocks;
	return s;
}

/* Fill res for q's outcome and call its on_done; then free q. */
static void
seq_finish(lg_sched *s, sched_seq *q, lg_status st, const lg_error *e)
{
	lg_sched_result res;
	double		t = now_ms();

	memset(&res, 0, sizeof(res));
	if (q->embed)
	{
		res.status = st;
		if (e)
			res.err = *e;
		res.finish = st == LG_OK ? LG_FINISH_STOP : LG_FINISH_NONE;
		res.text = "";
		res.n_prompt = (int32_t) (q->embed->n_total < INT32_MAX ? q->embed->n_total : INT32_MAX);
		if (q->admitted)
		{
			res.t_queue_ms = q->t_admit - q->t_submit;
			res.t_prompt_ms = t - q->t_admit;
		}
		q->on_done(q->arg, &res);
		seq_free(q);
		return;
	}
	if (st == LG_OK)
		lg_stream_end(&q->stream, LG_FINISH_LENGTH, q->on_piece, q->arg);
	res.status = st;
	if (e)
		res.err = *e;
	res.finish = st == LG_OK ? q->stream.finish : LG_FINISH_NONE;
	res.text = q->stream.text.data ? q->stream.text.data : "";
	res.text_len = q->stream.text.len;
	res.ids = q->stream.ids;
	res.n_ids = q->stream.n_ids;
	res.n_prompt = q->n_prompt;
	res.n_cached = q->n_cached;
	res.n_preempted = q->n_preempted;
	if (q->admitted)
		res.t_queue_ms = q->t_admit - q->t_submit;
	if (q->t_first > 0)
	{
		res.t_first_ms = q->t_first - q->t_submit;
		res.t_prompt_ms = q->t_first - q->t_admit;
		res.t_gen_ms = t - q->t_first;
	}
	if (q->kv.n_blocks > 0)
		lg_kv_seq_release(s->kv, &q->kv);
	/* whoever hears of the end and asks for stats must see the blocks freed */
	pthread_mutex_lock(&s->lock);
	lg_kv_cache_stats(s->kv, &s->stats.kv);
	pthread_mutex_unlock(&s->lock);
	q->on_done(q->arg, &res);
	seq_free(q);
}

void
lg_sched_free(lg_sched *s)
{
	lg_error	e;

	if (s == NULL)
		return;
	lg_error_set(&e, LG_ERR_CANCELLED, "the scheduler was shut down");
	for (int32_t i = 0; i < s->n_run; i++)
		seq_finish(s, s->run[i], LG_ERR_CANCELLED, &e);
	for (int32_t i = 0; i < s->n_queue; i++)
		seq_finish(s, s->queue[i], LG_ERR_CANCELLED, &e);
	if (s->ctx)
		lg_context_free(s->ctx);
	if (s->kv)
		lg_kv_cache_free(s->kv);
	if (s->own_be && s->be)
		s->be->free(s->be);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->queue);
	free(s->run);
	free(s->batch);
	free(s->owners);
	free(s->embeds);
	free(s->logits);
	free(s->dev_params);
	free(s->dev_ids);
	free(s);
}

/* Requests waiting for their first step (under the lock): embedding ones that started do not count. */
static int32_t
queued_waiting(lg_sched *s)
{
	int32_t		n = 0;

	for (int32_t i = 0; i < s->n_queue; i++)
		if (s->queue[i]->embed == NULL || !s->queue[i]->embed->started)
			n++;
	return n;
}

lg_status
lg_sched_submit(lg_sched *s, const lg_sched_request *r, uint64_t *id, lg_error *err)
{
	lg_sampler_params defaults;
	sched_seq  *q;
	int32_t		n_ctx;
	int32_t		max_tokens;
	int32_t		need_blocks;
	lg_status	st;

	if (r->n_prompt <= 0 || r->prompt == NULL)
		return lg_error_set(err, LG_ERR_ARG, "the prompt is empty");
	if (r->on_done == NULL)
		return lg_error_set(err, LG_ERR_ARG, "a request needs an on_done callback");
	if (r->gen.max_tokens < 0)
		return lg_error_set(err, LG_ERR_ARG, "max_tokens must not be negative");
	if (r->gen.grammar != NULL)
		return lg_error_set(err, LG_ERR_ARG, "a scheduled request gives its grammar in grammar, not gen.grammar");
	if ((r->grammar == NULL) != (r->grammar_vocab == NULL))
		return lg_error_set(err, LG_ERR_ARG, "a grammar needs the model's grammar vocabulary");
	for (int32_t i = 0; i < r->n_prompt; i++)
		if (r->prompt[i] < 0 || r->prompt[i] >= s->n_vocab)
			return lg_error_set(err, LG_ERR_RANGE, "prompt token %d is not in the vocabulary (%d tokens)",
								(int) r->prompt[i], (int) s->n_vocab);
	n_ctx = r->n_ctx > 0 && r->n_ctx < s->p.n_ctx ? r->n_ctx : s->p.n_ctx;
	if (r->n_prompt > n_ctx)
		return lg_error_set(err, LG_ERR_RANGE, "the prompt has %d tokens, the context holds %d",
							(int) r->n_prompt, (int) n_ctx);
	need_blocks = (r->n_prompt + s->block_size - 1) / s->block_size;
	if (need_blocks > s->n_blocks)
		return lg_error_set(err, LG_ERR_NOMEM,
							"the prompt has %d tokens, the KV cache pool holds %d (%d blocks of %d)",
							(int) r->n_prompt, (int) (s->n_blocks * s->block_size),
							(int) s->n_blocks, (int) s->block_size);

	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	/*
	 * The context ends the sequence after n_ctx - n_prompt + 1 ids, so a
	 * larger max_tokens only costs memory; one more keeps "context" the
	 * finish reason there.
	 */
	max_tokens = r->gen.max_tokens;
	if (max_tokens > n_ctx - r->n_prompt + 2)
		max_tokens = n_ctx - r->n_prompt + 2;
	q->priority = r->priority;
	q->n_ctx = n_ctx;
	q->n_prompt = r->n_prompt;
	q->n_tokens = r->n_prompt;
	q->on_piece = r->on_piece;
	q->on_done = r->on_done;
	q->on_state = r->on_state;
	q->on_logits = r->on_logits;
	q->arg = r->arg;
	q->gp = r->gen;
	q->gp.max_tokens = max_tokens;
	q->gp.stops = NULL;
	q->gp.n_stops = 0;
	lg_kv_seq_init(&q->kv);
	q->tokens = malloc(sizeof(lg_token) * ((size_t) r->n_prompt + (size_t) max_tokens + 1));
	if (q->tokens == NULL)
	{
		seq_free(q);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	}
	memcpy(q->tokens, r->prompt, sizeof(lg_token) * (size_t) r->n_prompt);
	if (r->gen.n_stops > 0)
	{
		q->stops = calloc((size_t) r->gen.n_stops, sizeof(char *));
		if (q->stops == NULL)
		{
			seq_free(q);
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		}
		for (int32_t i = 0; i < r->gen.n_stops; i++)
		{
			q->stops[i] = strdup(r->gen.stops[i] ? r->gen.stops[i] : "");
			q->gp.n_stops++;
			if (q->stops[i] == NULL)
			{
				seq_free(q);
				return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
			}
		}
		q->gp.stops = (const char *const *) q->stops;
	}
	if (r->sampling == NULL)
		lg_sampler_params_default(&defaults);
	q->sampler = lg_sampler_new(r->sampling ? r->sampling : &defaults, s->n_vocab, err);
	if (q->sampler == NULL)
	{
		seq_free(q);
		return err->status;
	}
	if (r->grammar != NULL)
	{
		q->matcher = lg_grammar_matcher_new(r->grammar, r->grammar_vocab, err);
		if (q->matcher == NULL)
		{
			seq_free(q);
			return err->status;
		}
		q->gp.grammar = q->matcher;
	}
	st = lg_stream_init(&q->stream, s->model->vocab, &q->gp, err);
	if (st != LG_OK)
	{
		seq_free(q);
		return st;
	}
	q->t_submit = now_ms();

	pthread_mutex_lock(&s->lock);
	if (queued_waiting(s) >= s->p.max_queued)
	{
		s->stats.n_rejected++;
		pthread_mutex_unlock(&s->lock);
		seq_free(q);
		return lg_error_set(err, LG_ERR_BUSY, "the wait queue is full (%d requests)", (int) s->p.max_queued);
	}
	q->id = s->next_id++;
	s->queue[s->n_queue++] = q;
	s->stats.n_submitted++;
	if (id)
		*id = q->id;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return LG_OK;
}

/*
 * Make room for one more in the wait queue, keeping max_seqs spare for
 * preemptions (under the lock); embedding requests that started stay in
 * it beyond max_queued.  False when out of memory.
 */
static bool
queue_room(lg_sched *s)
{
	sched_seq **q;
	int32_t		cap;

	if (s->n_queue + s->p.max_seqs < s->cap_queue)
		return true;
	cap = s->cap_queue * 2;
	q = realloc(s->queue, sizeof(*q) * (size_t) cap);
	if (q == NULL)
		return false;
	s->queue = q;
	s->cap_queue = cap;
	return true;
}

lg_status
lg_sched_submit_embed(lg_sched *s, const lg_sched_embed_request *r, uint64_t *id, lg_error *err)
{
	sched_seq  *q;
	sched_embed *em;

	if (r->n_inputs <= 0 || r->inputs == NULL || r->n_tokens == NULL)
		return lg_error_set(err, LG_ERR_ARG, "an embedding request needs at least one input");
	if (r->on_done == NULL)
		return lg_error_set(err, LG_ERR_ARG, "a request needs an on_done callback");
	if (r->out == NULL)
		return lg_error_set(err, LG_ERR_ARG, "an embedding request needs an output buffer");
	if (r->pool == LG_POOL_NONE || lg_pooling_name(r->pool == LG_POOL_DEFAULT ? LG_POOL_MEAN : r->pool) == NULL)
		return lg_error_set(err, LG_ERR_ARG, "an embedding request pools each input into one vector (mean, cls or last)");
	for (int32_t i = 0; i < r->n_inputs; i++)
	{
		if (r->n_tokens[i] <= 0 || r->inputs[i] == NULL)
			return lg_error_set(err, LG_ERR_ARG, "input %d is empty", (int) i + 1);
		if (r->n_tokens[i] > s->p.n_ctx)
			return lg_error_set(err, LG_ERR_RANGE, "input %d has %d tokens, the context holds %d",
								(int) i + 1, (int) r->n_tokens[i], (int) s->p.n_ctx);
		for (int32_t j = 0; j < r->n_tokens[i]; j++)
			if (r->inputs[i][j] < 0 || r->inputs[i][j] >= s->n_vocab)
				return lg_error_set(err, LG_ERR_RANGE, "input %d: token %d is not in the vocabulary (%d tokens)",
									(int) i + 1, (int) r->inputs[i][j], (int) s->n_vocab);
	}

	q = calloc(1, sizeof(*q));
	em = calloc(1, sizeof(*em));
	if (q == NULL || em == NULL)
	{
		free(q);
		free(em);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	}
	q->embed = em;
	em->inputs = calloc((size_t) r->n_inputs, sizeof(*em->inputs));
	em->n_tokens = malloc(sizeof(int32_t) * (size_t) r->n_inputs);
	if (em->inputs == NULL || em->n_tokens == NULL)
	{
		seq_free(q);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	}
	for (int32_t i = 0; i < r->n_inputs; i++)
	{
		em->inputs[i] = malloc(sizeof(lg_token) * (size_t) r->n_tokens[i]);
		em->n_inputs++;
		if (em->inputs[i] == NULL)
		{
			seq_free(q);
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		}
		memcpy(em->inputs[i], r->inputs[i], sizeof(lg_token) * (size_t) r->n_tokens[i]);
		em->n_tokens[i] = r->n_tokens[i];
		em->n_total += r->n_tokens[i];
	}
	em->pool = r->pool == LG_POOL_DEFAULT ? lg_model_pooling(s->model) : r->pool;
	em->normalize = r->normalize;
	em->out = r->out;
	q->priority = r->priority;
	q->on_done = r->on_done;
	q->on_state = r->on_state;
	q->arg = r->arg;
	q->t_submit = now_ms();
	em->t_aging = q->t_submit;

	pthread_mutex_lock(&s->lock);
	if (queued_waiting(s) >= s->p.max_queued || !queue_room(s))
	{
		s->stats.n_rejected++;
		pthread_mutex_unlock(&s->lock);
		seq_free(q);
		return lg_error_set(err, LG_ERR_BUSY, "the wait queue is full (%d requests)", (int) s->p.max_queued);
	}
	q->id = s->next_id++;
	s->queue[s->n_queue++] = q;
	s->stats.n_submitted++;
	if (id)
		*id = q->id;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return LG_OK;
}

void
lg_sched_cancel(lg_sched *s, uint64_t id)
{
	pthread_mutex_lock(&s->lock);
	for (int32_t i = 0; i < s->n_queue; i++)
		if (s->queue[i]->id == id)
			s->queue[i]->cancel = true;
	for (int32_t i = 0; i < s->n_run; i++)
		if (s->run[i]->id == id)
			s->run[i]->cancel = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

bool
lg_sched_wait(lg_sched *s, int timeout_ms)
{
	struct timespec ts;
	bool		work;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L)
	{
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (s->n_queue == 0 && s->n_run == 0)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) != 0)
			break;
	work = s->n_queue > 0 || s->n_run > 0;
	pthread_mutex_unlock(&s->lock);
	return work;
}

void
lg_sched_stats_get(lg_sched *s, lg_sched_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	out->n_queued = queued_waiting(s);
	out->n_running = s->n_run + (s->n_queue - out->n_queued);
	pthread_mutex_unlock(&s->lock);
}

/* ---- planning a step (under the lock) ---- */

/* Rank order of running sequences: higher priority, then admitted earlier. */
static int
rank_cmp(const void *a, const void *b)
{
	const sched_seq *x = *(sched_seq *const *) a;
	const sched_seq *y = *(sched_seq *const *) b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->admit_order < y->admit_order ? -1 : x->admit_order > y->admit_order;
}

/* Remove run[i], keeping the rank order. */
static void
run_remove(lg_sched *s, int32_t i)
{
	memmove(&s->run[i], &s->run[i + 1], sizeof(s->run[0]) * (size_t) (s->n_run - i - 1));
	s->n_run--;
}

/* Put q back in the wait queue; its blocks go (the full ones stay cached). */
static void
preempt(lg_sched *s, int32_t i)
{
	sched_seq  *q = s->run[i];

	run_remove(s, i);
	lg_kv_seq_release(s->kv, &q->kv);
	q->decoding = false;
	q->n_step = 0;
	q->preempted = true;
	q->n_preempted++;
	s->stats.n_preemptions++;
	if (q->reported_running)
	{
		q->next_preempted = s->preempted;
		s->preempted = q;
	}
	s->queue[s->n_queue++] = q;	/* cap_queue leaves room for every running one */
}

/* Positions q could hold now: its blocks plus every block a reserve can take. */
static int32_t
positions_within_reach(lg_sched *s, const sched_seq *q)
{
	return (q->kv.n_blocks + lg_kv_cache_available(s->kv)) * s->block_size;
}

/* Move q (in no list now) to the failed list with its error. */
static void
fail_seq(lg_sched *s, sched_seq *q, sched_seq **failed, const lg_error *e)
{
	q->fail = *e;
	q->next_done = *failed;
	*failed = q;
	s->stats.n_finished++;
}

/* The error for a sequence the whole pool cannot hold. */
static void
pool_too_small(lg_sched *s, int32_t n_pos, lg_error *e)
{
	lg_error_set(e, LG_ERR_NOMEM,
				 "the KV cache pool (%d blocks of %d positions) cannot hold a sequence of %d positions",
				 (int) s->n_blocks, (int) s->block_size, (int) n_pos);
}

/*
 * Reserve blocks for run[i]'s next want tokens, preempting lower-ranked
 * sequences not yet given a share of this step when the pool is short.
 * Returns the tokens granted (a prefill chunk may shrink to what fits);
 * 0 when run[i] itself was preempted or failed (run[i] is now another
 * sequence); -1 when a prefill must wait a step (others advance).
 */
static int32_t
reserve_running(lg_sched *s, int32_t i, int32_t want, int32_t granted, sched_seq **failed)
{
	sched_seq  *q = s->run[i];
	lg_error	e;

	memset(&e, 0, sizeof(e));
	for (;;)
	{
		int32_t		fit;
		int32_t		victim = -1;

		if (lg_kv_seq_reserve(s->kv, &q->kv, q->kv.n_pos + want, &e) == LG_OK)
			return want;
		if (e.status != LG_ERR_BUSY)
			break;
		fit = positions_within_reach(s, q) - q->kv.n_pos;
		if (!q->decoding && fit >= 1)
		{
			want = fit < want ? fit : want;
			continue;
		}
		for (int32_t j = s->n_run - 1; j > i && victim < 0; j--)
			if (s->run[j]->n_step == 0)
				victim = j;
		if (victim >= 0)
		{
			preempt(s, victim);
			continue;
		}
		if (granted > 0 && !q->decoding)
			return -1;			/* the blocks are busy this step; a later one frees some */
		if (i > 0)
		{
			preempt(s, i);		/* the lowest-ranked: make way for the others */
			return 0;
		}
		/* alone, and the pool still cannot hold it */
		pool_too_small(s, q->kv.n_pos + want, &e);
		break;
	}
	run_remove(s, i);
	lg_kv_seq_release(s->kv, &q->kv);
	fail_seq(s, q, failed, &e);
	return 0;
}

/*
 * Index of the queued request with the best effective priority, or -1;
 * generation requests only when gen_ok (a free sequence slot), embedding
 * requests not yet planned in this step.
 */
static int32_t
best_queued(lg_sched *s, double now, bool gen_ok)
{
	int32_t		best = -1;
	double		best_eff = 0;

	for (int32_t i = 0; i < s->n_queue; i++)
	{
		sched_seq  *q = s->queue[i];
		double		eff = q->priority + (now - (q->embed ? q->embed->t_aging : q->t_submit)) / s->p.aging_ms;

		if (q->cancel || (q->embed ? q->embed->step_end > q->embed->next : !gen_ok))
			continue;
		if (best < 0 || eff > best_eff ||
			(eff == best_eff && (q->preempted > s->queue[best]->preempted ||
								 (q->preempted == s->queue[best]->preempted && q->id < s->queue[best]->id))))
		{
			best = i;
			best_eff = eff;
		}
	}
	return best;
}

/*
 * Try to admit queue[k] with at most budget tokens this step.  Returns the
 * tokens granted (q is then running), 0 when the pool is short (q stays
 * queued), -1 when q can never fit (moved to *failed).
 */
static int32_t
admit(lg_sched *s, int32_t k, int32_t budget, double now, sched_seq **failed)
{
	sched_seq  *q = s->queue[k];
	int32_t		cached;
	int32_t		want;
	lg_error	e;

	/* a full pool with sequences running: wait, without counting a lookup */
	if (s->n_run > 0 && lg_kv_cache_available(s->kv) == 0)
		return 0;
	memset(&e, 0, sizeof(e));
	cached = lg_kv_seq_reuse_prefix(s->kv, &q->kv, q->tokens, q->n_tokens);
	want = q->n_tokens - q->kv.n_pos;
	if (want > budget)
		want = budget;
	if (lg_kv_seq_reserve(s->kv, &q->kv, q->kv.n_pos + want, &e) != LG_OK)
	{
		int32_t		fit = positions_within_reach(s, q) - q->kv.n_pos;

		if (e.status == LG_ERR_BUSY && fit >= 1)
			want = fit < want ? fit : want;
		else
			want = 0;
		if (want > 0 && lg_kv_seq_reserve(s->kv, &q->kv, q->kv.n_pos + want, &e) != LG_OK)
			want = 0;
		if (want == 0)
		{
			lg_kv_seq_release(s->kv, &q->kv);
			if (e.status == LG_ERR_BUSY && s->n_run > 0)
				return 0;		/* wait for running ones to free blocks */
			if (e.status == LG_ERR_BUSY)
				pool_too_small(s, q->n_tokens, &e);
			s->queue[k] = s->queue[--s->n_queue];
			fail_seq(s, q, failed, &e);
			return -1;
		}
	}
	s->queue[k] = s->queue[--s->n_queue];
	if (!q->admitted)
	{
		q->admitted = true;
		q->t_admit = now;
		q->n_cached = cached;
	}
	q->preempted = false;
	q->decoding = false;
	q->admit_order = ++s->admit_counter;
	s->run[s->n_run++] = q;
	return want;
}

/*
 * Give embedding request q whole inputs within budget (at least one when
 * no embedding input is planned in this step yet); returns the tokens
 * taken, 0 when none fit.
 */
static int32_t
plan_embed(lg_sched *s, sched_seq *q, int32_t budget, double now)
{
	sched_embed *em = q->embed;
	int32_t		taken = 0;
	int32_t		end = em->next;

	while (end < em->n_inputs &&
		   (taken + em->n_tokens[end] <= budget || (s->n_embeds == 0 && end == em->next)))
		taken += em->n_tokens[end++];
	if (end == em->next)
		return 0;
	if (s->n_embeds == s->cap_embeds)
	{
		sched_seq **more = realloc(s->embeds, sizeof(*more) * (size_t) s->cap_embeds * 2);

		if (more == NULL)
			return 0;			/* out of memory: the next step tries again */
		s->embeds = more;
		s->cap_embeds *= 2;
	}
	em->step_end = end;
	em->started = true;
	em->t_aging = now;
	if (!q->admitted)
	{
		q->admitted = true;
		q->t_admit = now;
	}
	s->embeds[s->n_embeds++] = q;
	s->stats.n_batch_tokens += taken;
	s->stats.n_prompt_tokens += taken;
	return taken;
}

/*
 * Decide this step's batch: s->batch and s->owners[0..n), each sequence's
 * n_step set.  Cancelled requests go to *cancelled, ones that can never
 * fit to *failed (with their error in fail).
 */
static int32_t
plan_step(lg_sched *s, sched_seq **cancelled, sched_seq **failed)
{
	int32_t		budget = s->p.max_batch_tokens;
	int64_t		preemptions_before = s->stats.n_preemptions;
	int32_t		granted = 0;
	int32_t		nb = 0;
	double		now = now_ms();

	/* cancellations first: they free blocks for the rest */
	for (int32_t i = s->n_queue - 1; i >= 0; i--)
	{
		if (!s->queue[i]->cancel)
			continue;
		s->queue[i]->next_done = *cancelled;
		*cancelled = s->queue[i];
		s->queue[i] = s->queue[--s->n_queue];
		s->stats.n_finished++;
	}
	for (int32_t i = s->n_run - 1; i >= 0; i--)
	{
		sched_seq  *q = s->run[i];

		if (!q->cancel)
			continue;
		run_remove(s, i);
		lg_kv_seq_release(s->kv, &q->kv);
		q->next_done = *cancelled;
		*cancelled = q;
		s->stats.n_finished++;
	}

	/* running sequences in rank order: decoders take one token, prefills a chunk */
	qsort(s->run, (size_t) s->n_run, sizeof(s->run[0]), rank_cmp);
	for (int32_t pass = 0; pass < 2; pass++)
	{
		for (int32_t i = 0; i < s->n_run && budget > 0;)
		{
			sched_seq  *q = s->run[i];
			int32_t		want;
			int32_t		got;

			if (q->decoding != (pass == 0) || q->n_step > 0)
			{
				i++;
				continue;
			}
			want = q->n_tokens - q->kv.n_pos;
			if (want > budget)
				want = budget;
			got = reserve_running(s, i, want, granted, failed);
			if (got == 0)
				continue;		/* run[i] is another sequence now */
			if (got > 0)
			{
				q->n_step = got;
				budget -= got;
				granted++;
			}
			i++;
		}
	}

	/*
	 * Admissions, best effective priority first — but not in a step that
	 * had to preempt: the pool is short, and admitting now would only
	 * preempt again next step.
	 */
	s->n_embeds = 0;
	while (budget > 0 && s->n_queue > 0 &&
		   s->stats.n_preemptions == preemptions_before)
	{
		int32_t		k = best_queued(s, now, s->n_run < s->p.max_seqs);
		int32_t		got;
		sched_seq  *q;

		if (k < 0)
			break;
		q = s->queue[k];
		if (q->embed)
		{
			got = plan_embed(s, q, budget, now);
			if (got == 0)
				break;
			budget -= got;
			continue;
		}
		got = admit(s, k, budget, now, failed);
		if (got == 0)
			break;
		if (got < 0)
			continue;
		q->n_step = got;
		budget -= got;
		granted++;
	}

	/* the batch, in rank order then admission order */
	for (int32_t i = 0; i < s->n_run; i++)
	{
		sched_seq  *q = s->run[i];

		if (q->n_step == 0)
			continue;
		s->owners[nb] = q;
		s->batch[nb].kv = &q->kv;
		s->batch[nb].tokens = q->tokens + q->kv.n_pos;
		s->batch[nb].n_tokens = q->n_step;
		s->batch[nb].want_logits = q->kv.n_pos + q->n_step == q->n_tokens;
		s->stats.n_batch_tokens += q->n_step;
		if (!q->decoding)
			s->stats.n_prompt_tokens += q->n_step;
		nb++;
	}
	s->stats.last_batch_seqs = nb + s->n_embeds;
	s->stats.last_batch_tokens = s->p.max_batch_tokens - budget;
	if (nb > 0 || s->n_embeds > 0)
		s->stats.n_steps++;
	return nb;
}

/* Take q out of the running list (it finished). */
static void
retire(lg_sched *s, sched_seq *q)
{
	pthread_mutex_lock(&s->lock);
	for (int32_t i = 0; i < s->n_run; i++)
	{
		if (s->run[i] == q)
		{
			run_remove(s, i);
			break;
		}
	}
	s->stats.n_finished++;
	pthread_mutex_unlock(&s->lock);
}

/* Take q (an embedding request that ended) out of the wait queue. */
static void
embed_retire(lg_sched *s, sched_seq *q)
{
	pthread_mutex_lock(&s->lock);
	for (int32_t i = 0; i < s->n_queue; i++)
	{
		if (s->queue[i] == q)
		{
			s->queue[i] = s->queue[--s->n_queue];
			break;
		}
	}
	s->stats.n_finished++;
	pthread_mutex_unlock(&s->lock);
}

/*
 * Evaluate this step's embedding inputs: one lg_context_embed call per run
 * of requests with the same pooling and normalisation, written straight
 * into each request's output.  A failed call fails its requests.
 */
static void
step_embeddings(lg_sched *s)
{
	int32_t		n_embd = lg_model_n_embd(s->model);

	for (int32_t a = 0; a < s->n_embeds;)
	{
		sched_embed *ea = s->embeds[a]->embed;
		int32_t		b = a;
		int32_t		n = 0;
		const lg_token **toks;
		int32_t    *lens;
		float	   *out;
		lg_error	e;
		lg_status	st;
		int64_t		n_tok = 0;

		while (b < s->n_embeds && s->embeds[b]->embed->pool == ea->pool &&
			   s->embeds[b]->embed->normalize == ea->normalize)
		{
			n += s->embeds[b]->embed->step_end - s->embeds[b]->embed->next;
			b++;
		}
		toks = malloc(sizeof(*toks) * (size_t) n);
		lens = malloc(sizeof(*lens) * (size_t) n);
		out = malloc(sizeof(float) * (size_t) n * (size_t) n_embd);
		memset(&e, 0, sizeof(e));
		if (toks == NULL || lens == NULL || out == NULL)
			st = lg_error_set(&e, LG_ERR_NOMEM, "out of memory for %d embedding inputs", (int) n);
		else
		{
			int32_t		k = 0;

			for (int32_t i = a; i < b; i++)
			{
				sched_embed *em = s->embeds[i]->embed;

				for (int32_t j = em->next; j < em->step_end; j++, k++)
				{
					toks[k] = em->inputs[j];
					lens[k] = em->n_tokens[j];
					n_tok += lens[k];
				}
			}
			st = lg_context_embed(s->ctx, toks, lens, n, ea->pool, ea->normalize, out, &e);
		}
		for (int32_t i = a, k = 0; i < b; i++)
		{
			sched_seq  *q = s->embeds[i];
			sched_embed *em = q->embed;
			int32_t		m = em->step_end - em->next;

			if (st == LG_OK)
				memcpy(em->out + (size_t) em->next * n_embd, out + (size_t) k * n_embd,
					   sizeof(float) * (size_t) m * (size_t) n_embd);
			k += m;
			em->next = em->step_end;
			if (st != LG_OK || em->next == em->n_inputs)
			{
				embed_retire(s, q);
				seq_finish(s, q, st, st == LG_OK ? NULL : &e);
			}
		}
		if (st == LG_OK)
		{
			pthread_mutex_lock(&s->lock);
			s->stats.n_embed_inputs += n;
			s->stats.n_embed_tokens += n_tok;
			pthread_mutex_unlock(&s->lock);
		}
		free(toks);
		free(lens);
		free(out);
		a = b;
	}
	s->n_embeds = 0;
}

lg_status
lg_sched_step(lg_sched *s, bool *busy, lg_error *err)
{
	sched_seq  *cancelled = NULL;
	sched_seq  *failed = NULL;
	sched_seq  *preempted;
	lg_error	e;
	int32_t		nb;
	int32_t		row = 0;
	lg_status	st;
	bool		on_device;

	pthread_mutex_lock(&s->lock);
	*busy = s->n_queue > 0 || s->n_run > 0;
	s->preempted = NULL;
	nb = plan_step(s, &cancelled, &failed);
	preempted = s->preempted;
	pthread_mutex_unlock(&s->lock);

	/*
	 * State changes, outside the lock.  Only this thread frees sequences,
	 * so a preempted one waiting in the queue is still there to report.
	 */
	for (sched_seq *q = preempted; q != NULL; q = q->next_preempted)
	{
		if (q->on_state && q->reported_running)
			q->on_state(q->arg, false);
		q->reported_running = false;
	}
	for (int32_t i = 0; i < nb; i++)
	{
		sched_seq  *q = s->owners[i];

		if (!q->reported_running)
		{
			q->reported_running = true;
			if (q->on_state)
				q->on_state(q->arg, true);
		}
	}

	while (cancelled)
	{
		sched_seq  *q = cancelled;

		cancelled = q->next_done;
		if (q->embed)
		{
			lg_error_set(&e, LG_ERR_CANCELLED, "the request was cancelled");
			seq_finish(s, q, LG_ERR_CANCELLED, &e);
			continue;
		}
		lg_stream_end(&q->stream, LG_FINISH_CANCELLED, NULL, NULL);
		seq_finish(s, q, LG_OK, NULL);
	}
	while (failed)
	{
		sched_seq  *q = failed;

		failed = q->next_done;
		seq_finish(s, q, q->fail.status != LG_OK ? q->fail.status : LG_ERR_NOMEM, &q->fail);
	}
	for (int32_t i = 0; i < s->n_embeds; i++)
	{
		sched_seq  *q = s->embeds[i];

		if (!q->reported_running)
		{
			q->reported_running = true;
			if (q->on_state)
				q->on_state(q->arg, true);
		}
	}
	if (nb == 0)
		goto embeddings;

	memset(&e, 0, sizeof(e));
	/*
	 * When every sequence wanting a token samples with what the device
	 * implements (no grammar, bias or penalties), the device draws the
	 * tokens and only their ids come back; otherwise the logits do.
	 */
	on_device = !s->p.host_sampling && lg_context_can_sample(s->ctx);
	for (int32_t i = 0; on_device && i < nb; i++)
		if (s->batch[i].want_logits &&
			(s->owners[i]->gp.grammar != NULL || s->owners[i]->on_logits != NULL ||
			 !lg_sampler_device_ok(s->owners[i]->sampler)))
			on_device = false;
	if (on_device)
	{
		int32_t		k = 0;

		for (int32_t i = 0; i < nb; i++)
			if (s->batch[i].want_logits)
				lg_sampler_device_params(s->owners[i]->sampler, &s->dev_params[k++]);
		st = lg_context_eval_batch_sample(s->ctx, s->batch, nb, s->dev_params, s->dev_ids, &e);
	}
	else
		st = lg_context_eval_batch(s->ctx, s->batch, nb, s->logits, &e);
	for (int32_t i = 0; i < nb; i++)
	{
		sched_seq  *q = s->owners[i];
		bool		want_logits = s->batch[i].want_logits;
		lg_token	t;
		lg_status	qst;
		lg_error	qerr;

		q->n_step = 0;
		if (st != LG_OK)
		{
			retire(s, q);
			seq_finish(s, q, st, &e);
			continue;
		}
		lg_kv_seq_commit(s->kv, &q->kv, q->tokens);
		if (!want_logits)
			continue;
		if (on_device)
		{
			t = s->dev_ids[row++];
			if (t < 0 || t >= s->n_vocab)
			{
				lg_error_set(&qerr, LG_ERR_INTERNAL, "%s: the device sampler returned token %d of a vocabulary of %d",
							 s->be->name, (int) t, (int) s->n_vocab);
				retire(s, q);
				seq_finish(s, q, LG_ERR_INTERNAL, &qerr);
				continue;
			}
			lg_sampler_accept(q->sampler, t);
		}
		else
		{
			float	   *lr = s->logits + (size_t) row++ * s->n_vocab;

			/* a logits processor (an engine plugin) goes before the sampler */
			memset(&qerr, 0, sizeof(qerr));
			if (q->on_logits != NULL &&
				!q->on_logits(q->arg, lr, s->n_vocab, q->tokens, q->n_tokens, q->n_prompt, &qerr))
			{
				retire(s, q);
				seq_finish(s, q, qerr.status != LG_OK ? qerr.status : LG_ERR_INTERNAL, &qerr);
				continue;
			}
			t = lg_stream_sample(&q->stream, q->sampler, lr, NULL);
		}
		if (q->t_first == 0)
			q->t_first = now_ms();
		q->decoding = true;
		pthread_mutex_lock(&s->lock);
		s->stats.n_gen_tokens++;
		pthread_mutex_unlock(&s->lock);
		if (t != LG_TOKEN_NULL)
			q->tokens[q->n_tokens++] = t;
		memset(&qerr, 0, sizeof(qerr));
		qst = lg_stream_feed(&q->stream, t, q->on_piece, q->arg, &qerr);
		if (qst == LG_OK && !lg_stream_done(&q->stream) && q->n_tokens - 1 >= q->n_ctx)
			q->stream.finish = LG_FINISH_CONTEXT;
		if (qst != LG_OK || lg_stream_done(&q->stream))
		{
			retire(s, q);
			seq_finish(s, q, qst, &qerr);
		}
	}

embeddings:
	step_embeddings(s);
	pthread_mutex_lock(&s->lock);
	lg_kv_cache_stats(s->kv, &s->stats.kv);
	pthread_mutex_unlock(&s->lock);
	return LG_OK;
}

const char *
lg_sched_device(const lg_sched *s)
{
	return s->be->name;
}
