/*
 * scheduler.h — continuous batching: many generation requests share one
 * model, one paged KV cache and one forward pass per step.
 *
 * Every step (lg_sched_step) builds one batch of at most max_batch_tokens
 * tokens: the next token of every running sequence that is decoding, then
 * chunks of the prompts of sequences still prefilling, then new requests
 * admitted from the wait queue while the budget, max_seqs and the KV pool
 * allow.  Requests join and leave between steps.  A new request first
 * attaches the prefix-cache blocks its prompt matches (kv_cache.h), so a
 * shared instruction is computed once.
 *
 * The wait queue is bounded (max_queued): submit fails at once with
 * LG_ERR_BUSY when it is full.  Requests are admitted by priority (higher
 * first), with waiting time raising a request's effective priority so none
 * starves (see scheduler.c for the rule).
 *
 * When a running sequence needs a block and the pool has none, the
 * sequence admitted last (lowest effective priority) is preempted: its
 * blocks are released and it goes back to the front of the wait queue with
 * its generated tokens appended to its prompt, to be recomputed later —
 * the prefix cache usually makes that cheap.  Its sampler state and stream
 * are kept, so its output is the same as without preemption.
 *
 * Embedding requests (lg_sched_submit_embed) wait in the same queue, by
 * the same priority and aging rule, and count against max_queued while
 * none of their inputs has run.  They hold no KV blocks and need no
 * decode steps: a step gives the token budget left after the running
 * generations to whole inputs of the best-ranked embedding requests (at
 * least one input per step, even one longer than the budget), so a big
 * embedding job advances a budget's worth at a time, between generation
 * tokens.  A request that just advanced ages again from zero, so waiting
 * generations and other embedding requests take turns with it.
 *
 * Threads: submit, cancel, stats and wait may be called from any thread;
 * step is called by one thread (the one that runs the model), and the
 * callbacks run on it.
 */
#ifndef LG_SCHEDULER_H
#define LG_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "embed.h"
#include "generate.h"
#include "kv_cache.h"
#include "model.h"
#include "sampler.h"

/* grammar.h's types; declared here so this header does not need it */
typedef struct lg_grammar lg_grammar;
typedef struct lg_grammar_vocab lg_grammar_vocab;

typedef struct lg_sched_params
{
	int32_t		max_batch_tokens;	/* tokens per step; 0 = 512 */
	int32_t		max_seqs;		/* running sequences at most; 0 = 64 */
	int32_t		max_queued;		/* waiting requests at most; 0 = 256 */
	int32_t		n_ctx;			/* positions per sequence at most; 0 = min(n_ctx_train, 4096) */
	/*
	 * The pool (block size, budget, prefix cache).  n_blocks and max_bytes
	 * both 0: room for max_seqs sequences of n_ctx positions.
	 */
	lg_kv_cache_params kv;
	int32_t		aging_ms;		/* waiting this long raises the effective priority by 1; 0 = 1000 */
	int32_t		n_threads;		/* CPU backend threads; 0 = all CPUs */
	lg_backend *backend;		/* NULL: one the scheduler opens from device and owns */
	const char *device;			/* lg_backend_open's name: "cpu" (NULL), "cuda:0", "auto" */
	bool		host_sampling;	/* never sample on the device, even where it could */
} lg_sched_params;

void		lg_sched_params_default(lg_sched_params *p);

/* What a finished request reports to on_done (valid during the call only). */
typedef struct lg_sched_result
{
	lg_status	status;			/* LG_OK, or why it failed (err) */
	lg_error	err;
	lg_finish_reason finish;	/* with LG_OK; LG_FINISH_CANCELLED after lg_sched_cancel */
	const char *text;			/* generated text (stop strings removed) */
	size_t		text_len;
	const lg_token *ids;		/* generated ids */
	int32_t		n_ids;
	int32_t		n_prompt;		/* prompt tokens */
	int32_t		n_cached;		/* prompt tokens taken from the prefix cache */
	int32_t		n_preempted;	/* times this request was preempted */
	double		t_queue_ms;		/* submit -> admitted (first time) */
	double		t_first_ms;		/* submit -> first token sampled */
	double		t_prompt_ms;	/* admitted -> first token sampled */
	double		t_gen_ms;		/* first token -> done */
} lg_sched_result;

typedef void (*lg_sched_done_fn) (void *arg, const lg_sched_result *res);
/* A request was admitted (running true) or preempted back to the queue (false). */
typedef void (*lg_sched_state_fn) (void *arg, bool running);
/*
 * Before each sample, on the stepping thread: change the request's logits
 * (n_vocab floats) in place; tokens are its ids so far (n_prompt prompt
 * ids first).  False, with err set, fails the request.
 */
typedef bool (*lg_sched_logits_fn) (void *arg, float *logits, int32_t n_vocab, const lg_token *tokens,
									int32_t n_tokens, int32_t n_prompt, lg_error *err);

typedef struct lg_sched_request
{
	const lg_token *prompt;		/* copied by submit */
	int32_t		n_prompt;
	/*
	 * Sampler settings (copied; the scheduler makes the sampler, so a
	 * seeded request samples the same tokens batched or alone).
	 */
	const lg_sampler_params *sampling;
	lg_generate_params gen;		/* max_tokens, stops (copied), include_eog; grammar must be NULL */
	/*
	 * A grammar the output must follow (NULL: none) and the model's
	 * grammar vocabulary (both or neither; not owned, shared read-only:
	 * they must outlive the request, i.e. until on_done).  The scheduler
	 * makes the request's matcher; it is kept across preemption, since the
	 * tokens already generated are recomputed, never sampled again.
	 */
	const lg_grammar *grammar;
	const lg_grammar_vocab *grammar_vocab;
	int32_t		priority;		/* higher is sooner; 0 is normal */
	int32_t		n_ctx;			/* positions at most; 0 (or more than the scheduler's) = the scheduler's */
	lg_piece_fn on_piece;		/* streamed text; return false to cancel; may be NULL */
	lg_sched_done_fn on_done;	/* called exactly once, also on failure and cancel */
	lg_sched_state_fn on_state; /* may be NULL; for monitoring */
	lg_sched_logits_fn on_logits;	/* may be NULL; a request with one samples on the host */
	void	   *arg;
} lg_sched_request;

typedef struct lg_sched_stats
{
	int32_t		n_queued;		/* waiting (including preempted) */
	int32_t		n_running;		/* admitted, holding KV blocks */
	int64_t		n_submitted;
	int64_t		n_finished;		/* on_done called, any outcome */
	int64_t		n_rejected;		/* submit refused: queue full */
	int64_t		n_steps;
	int64_t		n_batch_tokens;	/* tokens evaluated, over all steps */
	int64_t		n_prompt_tokens;	/* of those, prompt (prefill) tokens */
	int64_t		n_gen_tokens;	/* tokens sampled */
	int64_t		n_preemptions;
	int32_t		max_batch_tokens;
	int32_t		last_batch_tokens;	/* tokens in the most recent step */
	int32_t		last_batch_seqs;
	lg_kv_stats kv;
	int64_t		n_embed_inputs;	/* embedding inputs evaluated */
	int64_t		n_embed_tokens;	/* their tokens (also in n_batch_tokens) */
} lg_sched_stats;

/*
 * An embedding request: n_inputs token sequences, one pooled vector each.
 * on_done gets n_prompt (tokens in all inputs), t_queue_ms (submit to its
 * first step) and t_prompt_ms (first step to done); on LG_OK the vectors
 * are in out.
 */
typedef struct lg_sched_embed_request
{
	const lg_token *const *inputs;	/* copied by submit */
	const int32_t *n_tokens;	/* each > 0 and at most n_ctx */
	int32_t		n_inputs;
	lg_pooling	pool;			/* not LG_POOL_NONE; LG_POOL_DEFAULT: the model's */
	bool		normalize;
	float	   *out;			/* [n_inputs][n_embd], the caller's until on_done */
	int32_t		priority;
	lg_sched_done_fn on_done;	/* called exactly once, also on failure and cancel */
	lg_sched_state_fn on_state; /* may be NULL: true at its first step */
	void	   *arg;
} lg_sched_embed_request;

typedef struct lg_sched lg_sched;

lg_sched   *lg_sched_new(const lg_model *m, const lg_sched_params *p, lg_error *err);
/* Ends every request (on_done with LG_ERR_CANCELLED), then frees. */
void		lg_sched_free(lg_sched *s);

/*
 * Queue a request.  *id (may be NULL) names it for lg_sched_cancel.
 * LG_ERR_BUSY when the wait queue is full, LG_ERR_RANGE when the prompt
 * cannot fit n_ctx (or has a token outside the vocabulary), LG_ERR_NOMEM
 * when it cannot fit the whole KV pool, LG_ERR_ARG for bad settings (a
 * grammar without its vocabulary, gen.grammar set):
 * on_done is NOT called then, the error is the return value.
 */
lg_status	lg_sched_submit(lg_sched *s, const lg_sched_request *r, uint64_t *id, lg_error *err);
/*
 * Queue an embedding request; errors as lg_sched_submit (LG_ERR_ARG for
 * no inputs, an empty one or LG_POOL_NONE, LG_ERR_RANGE for one longer
 * than n_ctx).
 */
lg_status	lg_sched_submit_embed(lg_sched *s, const lg_sched_embed_request *r, uint64_t *id,
								  lg_error *err);
/* Cancel a queued or running request (on_done follows, from step). */
void		lg_sched_cancel(lg_sched *s, uint64_t id);

/*
 * Run one step.  *busy is set when there was work (false: nothing queued
 * or running).  A forward-pass failure fails the requests in that batch
 * (their on_done gets the error), not the scheduler.
 */
lg_status	lg_sched_step(lg_sched *s, bool *busy, lg_error *err);
/* Sleep until there is work or timeout_ms passes; true if there is work. */
bool		lg_sched_wait(lg_sched *s, int timeout_ms);
void		lg_sched_stats_get(lg_sched *s, lg_sched_stats *out);
/* Name of the backend the scheduler computes on ("cpu", "cuda:0"). */
const char *lg_sched_device(const lg_sched *s);

#endif							/* LG_SCHEDULER_H */
