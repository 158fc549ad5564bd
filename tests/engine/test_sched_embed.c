/*
 * test_sched_embed.c — embedding requests in the scheduler (scheduler.h),
 * on the real stories260K model, stepped by hand so that the interleaving
 * is exact: the vectors equal lg_context_embed's on a context of its own,
 * a generation behind a big embedding request advances every step, two
 * embedding requests take turns, the queue bound and cancellation hold, bad
 * requests are refused, and no KV block is ever held by an embedding.
 */
#include "test_util.h"

#include <math.h>

#include "embed.h"
#include "model.h"
#include "scheduler.h"
#include "vocab.h"

#define N_CTX 128

static lg_model *model;

static const char *const texts[] = {
	"Once upon a time",
	"The little dog ran to the park.",
	"Lily and Ben",
	"x",
	"Tom had a red ball and a blue car",
};
#define N_TEXTS ((int) (sizeof(texts) / sizeof(texts[0])))

/* What one request reported. */
typedef struct outcome
{
	int			n_done;
	lg_status	status;
	int32_t		n_prompt;
	char		text[1024];
	int			done_step;		/* the step count when it ended */
	int			n_started;		/* on_state(true) calls */
} outcome;

static int	step_count;

/* Record the end. */
static void
on_done(void *arg, const lg_sched_result *res)
{
	outcome    *o = arg;

	o->n_done++;
	o->status = res->status;
	o->n_prompt = res->n_prompt;
	snprintf(o->text, sizeof(o->text), "%.*s", (int) res->text_len, res->text);
	o->done_step = step_count;
}

/* Count starts. */
static void
on_state(void *arg, bool running)
{
	outcome    *o = arg;

	if (running)
		o->n_started++;
}

/* Tokenize with the model's special tokens; returns the count. */
static int32_t
tokenize(const char *text, lg_token *ids, int32_t cap)
{
	lg_error	err;
	int64_t		n;

	lg_error_clear(&err);
	n = lg_tokenize(model->vocab, text, strlen(text), true, false, ids, cap, &err);
	if (n < 0 || n > cap)
		fail_msg("tokenize: %s", err.msg);
	return (int32_t) n;
}

/* A scheduler of budget tokens a step. */
static lg_sched *
new_sched(int32_t budget, int32_t max_queued)
{
	lg_sched_params p;
	lg_error	err;
	lg_sched   *s;

	lg_sched_params_default(&p);
	p.max_batch_tokens = budget;
	p.max_seqs = 4;
	p.max_queued = max_queued;
	p.n_ctx = N_CTX;
	p.n_threads = 1;
	lg_error_clear(&err);
	s = lg_sched_new(model, &p, &err);
	if (s == NULL)
		fail_msg("lg_sched_new: %s", err.msg);
	return s;
}

/* Step until nothing is left (at most max steps); returns the steps taken. */
static int
run_all(lg_sched *s, int max)
{
	int			n = 0;
	bool		busy = true;
	lg_error	err;

	while (busy && n < max)
	{
		lg_error_clear(&err);
		assert_int_equal(lg_sched_step(s, &busy, &err), LG_OK);
		step_count++;
		n++;
	}
	assert_false(busy);
	return n;
}

/* The pool must be empty, and nothing queued or running. */
static void
assert_idle(lg_sched *s)
{
	lg_sched_stats st;

	lg_sched_stats_get(s, &st);
	assert_int_equal(st.n_queued, 0);
	assert_int_equal(st.n_running, 0);
	assert_int_equal(st.kv.n_used, 0);
	assert_int_equal(st.n_submitted, st.n_finished);
}

/* An embedding request of texts[first .. first + n) (or n copies of one text), submitted. */
typedef struct embed_req
{
	lg_token	ids[64][64];
	const lg_token *ptrs[64];
	int32_t		lens[64];
	float		out[64 * 256];
	outcome		o;
	uint64_t	id;
} embed_req;

/* Submit n inputs: text i is texts[i % N_TEXTS] (or same for all when same >= 0). */
static lg_status
submit_embed(lg_sched *s, embed_req *e, int n, int same, int32_t priority, lg_error *err)
{
	lg_sched_embed_request r;

	assert_true(n <= 64);
	memset(&r, 0, sizeof(r));
	for (int i = 0; i < n; i++)
	{
		e->lens[i] = tokenize(texts[same >= 0 ? same : i % N_TEXTS], e->ids[i], 64);
		e->ptrs[i] = e->ids[i];
	}
	r.inputs = e->ptrs;
	r.n_tokens = e->lens;
	r.n_inputs = n;
	r.pool = LG_POOL_DEFAULT;
	r.normalize = true;
	r.out = e->out;
	r.priority = priority;
	r.on_done = on_done;
	r.on_state = on_state;
	r.arg = &e->o;
	lg_error_clear(err);
	return lg_sched_submit_embed(s, &r, &e->id, err);
}

/* The vectors equal lg_context_embed's, one input at a time on a context of its own. */
static void
test_vectors_equal_direct(void **state)
{
	static embed_req e;
	lg_context_params cp;
	lg_context *c;
	lg_error	err;
	lg_sched   *s;
	int32_t		n_embd = lg_model_n_embd(model);
	lg_sched_stats st;

	(void) state;
	if (model == NULL)
		skip();
	memset(&e, 0, sizeof(e));
	s = new_sched(16, 8);	/* one or two inputs a step */
	assert_int_equal(submit_embed(s, &e, N_TEXTS * 2, -1, 0, &err), LG_OK);
	run_all(s, 100);
	assert_int_equal(e.o.n_done, 1);
	assert_int_equal(e.o.status, LG_OK);
	assert_int_equal(e.o.n_started, 1);
	lg_sched_stats_get(s, &st);
	assert_int_equal(st.n_embed_inputs, N_TEXTS * 2);
	assert_int_equal(st.n_embed_tokens, e.o.n_prompt);
	assert_true(st.n_steps >= 4);	/* in budget-sized steps, not at once */
	assert_idle(s);
	lg_sched_free(s);

	lg_context_params_default(&cp);
	cp.n_ctx = N_CTX;
	cp.n_threads = 1;
	lg_error_clear(&err);
	c = lg_context_new(model, &cp, &err);
	assert_non_null(c);
	for (int i = 0; i < N_TEXTS * 2; i++)
	{
		float		ref[256];
		const lg_token *p = e.ids[i];
		double		norm = 0;

		assert_int_equal(lg_context_embed(c, &p, &e.lens[i], 1, LG_POOL_DEFAULT, true, ref, &err), LG_OK);
		for (int j = 0; j < n_embd; j++)
		{
			assert_float_equal(e.out[i * n_embd + j], ref[j], 1e-5);
			norm += (double) ref[j] * ref[j];
		}
		assert_float_equal(norm, 1.0, 1e-4);
	}
	lg_context_free(c);
}

/* A generation submitted behind a big embedding request gets a token every step. */
static void
test_generation_not_starved(void **state)
{
	static embed_req e;
	outcome		g = {0};
	outcome		g_alone = {0};
	lg_token	prompt[64];
	lg_sched_request r;
	lg_sampler_params sp;
	lg_error	err;
	lg_sched   *s;
	int			start;

	(void) state;
	if (model == NULL)
		skip();
	memset(&e, 0, sizeof(e));
	lg_sampler_params_default(&sp);
	sp.temperature = 0;
	memset(&r, 0, sizeof(r));
	r.prompt = prompt;
	r.n_prompt = tokenize("The little dog", prompt, 64);
	r.sampling = &sp;
	r.gen.max_tokens = 12;
	r.on_done = on_done;

	/* the generation alone: its text */
	s = new_sched(16, 8);
	r.arg = &g_alone;
	assert_int_equal(lg_sched_submit(s, &r, NULL, &err), LG_OK);
	run_all(s, 100);
	assert_int_equal(g_alone.status, LG_OK);

	/* 64 inputs of ~10 tokens: about 40 steps of 16 tokens */
	start = step_count;
	assert_int_equal(submit_embed(s, &e, 64, 4, 0, &err), LG_OK);
	r.arg = &g;
	assert_int_equal(lg_sched_submit(s, &r, NULL, &err), LG_OK);
	run_all(s, 1000);
	assert_int_equal(g.status, LG_OK);
	assert_int_equal(e.o.status, LG_OK);
	/* the same text, and done within its own steps plus one or two of the embedding's */
	assert_string_equal(g.text, g_alone.text);
	assert_true(g.done_step - start <= r.gen.max_tokens + 3);
	assert_true(e.o.done_step - start > 30);
	assert_true(g.done_step < e.o.done_step);
	assert_idle(s);
	lg_sched_free(s);
}

/* Two embedding requests take turns: both start at once, neither waits for the other. */
static void
test_embeddings_take_turns(void **state)
{
	static embed_req a;
	static embed_req b;
	lg_error	err;
	lg_sched   *s;
	bool		busy;

	(void) state;
	if (model == NULL)
		skip();
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	s = new_sched(8, 8);		/* one input a step */
	assert_int_equal(submit_embed(s, &a, 20, 4, 0, &err), LG_OK);
	assert_int_equal(submit_embed(s, &b, 20, 4, 0, &err), LG_OK);
	for (int i = 0; i < 4; i++)
	{
		assert_int_equal(lg_sched_step(s, &busy, &err), LG_OK);
		step_count++;
	}
	assert_int_equal(a.o.n_started, 1);
	assert_int_equal(b.o.n_started, 1);
	run_all(s, 200);
	assert_int_equal(a.o.status, LG_OK);
	assert_int_equal(b.o.status, LG_OK);
	/* they end within a step of each other */
	assert_true(abs(a.o.done_step - b.o.done_step) <= 1);
	assert_idle(s);
	lg_sched_free(s);
}

/* max_queued counts waiting requests; a started embedding no longer waits; cancel ends both. */
static void
test_busy_and_cancel(void **state)
{
	static embed_req a;
	static embed_req b;
	static embed_req c;
	lg_error	err;
	lg_sched   *s;
	bool		busy;
	lg_sched_stats st;

	(void) state;
	if (model == NULL)
		skip();
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	s = new_sched(8, 1);
	assert_int_equal(submit_embed(s, &a, 30, 4, 0, &err), LG_OK);
	assert_int_equal(submit_embed(s, &b, 1, 4, 0, &err), LG_ERR_BUSY);
	assert_int_equal(lg_sched_step(s, &busy, &err), LG_OK);
	lg_sched_stats_get(s, &st);
	assert_int_equal(st.n_queued, 0);
	assert_int_equal(st.n_running, 1);
	assert_int_equal(submit_embed(s, &b, 30, 4, 0, &err), LG_OK);
	assert_int_equal(submit_embed(s, &c, 1, 4, 0, &err), LG_ERR_BUSY);
	lg_sched_cancel(s, a.id);
	lg_sched_cancel(s, b.id);
	run_all(s, 10);
	assert_int_equal(a.o.n_done, 1);
	assert_int_equal(a.o.status, LG_ERR_CANCELLED);
	assert_int_equal(b.o.n_done, 1);
	assert_int_equal(b.o.status, LG_ERR_CANCELLED);
	assert_int_equal(c.o.n_done, 0);
	lg_sched_stats_get(s, &st);
	assert_int_equal(st.n_rejected, 2);
	assert_idle(s);
	/* free ends what is left */
	assert_int_equal(submit_embed(s, &c, 3, 4, 0, &err), LG_OK);
	lg_sched_free(s);
	assert_int_equal(c.o.n_done, 1);
	assert_int_equal(c.o.status, LG_ERR_CANCELLED);
}

/* Bad requests are refused at submit, with the input named. */
static void
test_bad_requests(void **state)
{
	lg_sched_embed_request r;
	lg_token	ok[4] = {1, 2, 3, 4};
	lg_token	bad[2] = {1, 1000000};
	lg_token	longer[N_CTX + 1];
	const lg_token *ptrs[2];
	int32_t		lens[2];
	float		out[2 * 256];
	outcome		o = {0};
	lg_error	err;
	lg_sched   *s;

	(void) state;
	if (model == NULL)
		skip();
	s = new_sched(16, 8);
	memset(&r, 0, sizeof(r));
	r.inputs = ptrs;
	r.n_tokens = lens;
	r.out = out;
	r.pool = LG_POOL_DEFAULT;
	r.on_done = on_done;
	r.arg = &o;
	ptrs[0] = ok;
	lens[0] = 4;
	ptrs[1] = ok;
	lens[1] = 0;
	r.n_inputs = 0;
	assert_int_equal(lg_sched_submit_embed(s, &r, NULL, &err), LG_ERR_ARG);
	r.n_inputs = 2;
	assert_int_equal(lg_sched_submit_embed(s, &r, NULL, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "input 2 is empty"));
	lens[1] = 2;
	ptrs[1] = bad;
	assert_int_equal(lg_sched_submit_embed(s, &r, NULL, &err), LG_ERR_RANGE);
	assert_non_null(strstr(err.msg, "input 2"));
	for (int i = 0; i < N_CTX + 1; i++)
		longer[i] = 1;
	ptrs[1] = longer;
	lens[1] = N_CTX + 1;
	assert_int_equal(lg_sched_submit_embed(s, &r, NULL, &err), LG_ERR_RANGE);
	ptrs[1] = ok;
	lens[1] = 4;
	r.pool = LG_POOL_NONE;
	assert_int_equal(lg_sched_submit_embed(s, &r, NULL, &err), LG_ERR_ARG);
	r.pool = LG_POOL_DEFAULT;
	r.out = NULL;
	assert_int_equal(lg_sched_submit_embed(s, &r, NULL, &err), LG_ERR_ARG);
	r.out = out;
	r.on_done = NULL;
	assert_int_equal(lg_sched_submit_embed(s, &r, NULL, &err), LG_ERR_ARG);
	assert_int_equal(o.n_done, 0);
	assert_idle(s);
	lg_sched_free(s);
}

/* Load stories260K once, or skip everything visibly. */
static int
setup(void **state)
{
	char		buf[4096];
	const char *path = lg_test_fixture(buf, "fixtures/models/stories260K.gguf");
	lg_error	err;

	(void) state;
	if (path == NULL)
		return 0;
	lg_error_clear(&err);
	model = lg_model_load(path, &err);
	if (model == NULL)
	{
		printf("cannot load %s: %s\n", path, err.msg);
		return -1;
	}
	assert_true(lg_model_n_embd(model) <= 256);
	return 0;
}

static int
teardown(void **state)
{
	(void) state;
	lg_model_free(model);
	model = NULL;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_equal_direct),
		cmocka_unit_test(test_generation_not_starved),
		cmocka_unit_test(test_embeddings_take_turns),
		cmocka_unit_test(test_busy_and_cancel),
		cmocka_unit_test(test_bad_requests),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
