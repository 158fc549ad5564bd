/*
 * test_embed.c — lg_context_embed's contract, on stories260K (a decoder)
 * and, when LLAMAGPU_BIN is set, a `llamagpu synth` bert: the statuses of
 * bad input (empty, overlong, out-of-range ids, unknown pooling), the
 * context's own sequence left as it was, a long decoder sequence evaluated
 * in n_batch chunks giving what one step gives, and unit vectors.  The
 * values themselves are checked against numpy in tests/cli/test_embed.py.
 */
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "embed.h"
#include "model.h"

/* Load a model and a context of n_batch rows (0: default), or fail. */
static lg_context *
open_ctx(const char *path, int32_t n_batch, lg_model **m)
{
	lg_error	err;
	lg_context_params p;
	lg_context *c;

	*m = lg_model_load(path, &err);
	if (*m == NULL)
		fail_msg("%s: %s", path, err.msg);
	lg_context_params_default(&p);
	p.n_threads = 2;
	p.n_batch = n_batch;
	p.kv_type = LG_KV_F32;
	c = lg_context_new(*m, &p, &err);
	if (c == NULL)
		fail_msg("context: %s", err.msg);
	return c;
}

/* stories260K, or skip visibly. */
static const char *
stories(char *buf)
{
	return lg_test_fixture(buf, "fixtures/models/stories260K.gguf");
}

/* Bad input: each gets its own status, and nothing is written. */
static void
test_errors(void **state)
{
	char		buf[4096];
	const char *path = stories(buf);
	lg_model   *m;
	lg_context *c;
	lg_error	err;
	lg_token	ok[3] = {1, 400, 300};
	lg_token	bad[2] = {1, 1 << 20};
	lg_token   *longseq;
	const lg_token *seqs[2] = {ok, ok};
	int32_t		n[2] = {3, 0};
	float		out[2 * 64];

	if (path == NULL)
		skip();
	c = open_ctx(path, 0, &m);
	assert_int_equal(lg_model_n_embd(m), 64);
	assert_false(lg_model_is_encoder(m));
	assert_int_equal(lg_model_pooling(m), LG_POOL_LAST);

	/* an empty sequence */
	assert_int_equal(lg_context_embed(c, seqs, n, 2, LG_POOL_DEFAULT, true, out, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "sequence 1 is empty"));
	/* no sequences */
	assert_int_equal(lg_context_embed(c, seqs, n, 0, LG_POOL_DEFAULT, true, out, &err), LG_ERR_ARG);
	/* an id outside the vocabulary */
	seqs[1] = bad;
	n[1] = 2;
	assert_int_equal(lg_context_embed(c, seqs, n, 2, LG_POOL_DEFAULT, true, out, &err), LG_ERR_RANGE);
	/* longer than the context */
	longseq = calloc(lg_context_n_ctx(c) + 1, sizeof(lg_token));
	seqs[1] = longseq;
	n[1] = lg_context_n_ctx(c) + 1;
	assert_int_equal(lg_context_embed(c, seqs, n, 2, LG_POOL_DEFAULT, true, out, &err), LG_ERR_RANGE);
	assert_non_null(strstr(err.msg, "more than the context"));
	/* a pooling that is not one */
	n[1] = 3;
	seqs[1] = ok;
	assert_int_equal(lg_context_embed(c, seqs, n, 2, (lg_pooling) 7, true, out, &err), LG_ERR_ARG);
	assert_int_equal(lg_context_embed(c, seqs, n, 2, LG_POOL_MEAN, true, NULL, &err), LG_ERR_ARG);
	{
		lg_pooling	p;

		assert_int_equal(lg_pooling_parse("max", &p, &err), LG_ERR_ARG);
		assert_int_equal(lg_pooling_parse("cls", &p, &err), LG_OK);
		assert_int_equal(p, LG_POOL_CLS);
		assert_string_equal(lg_pooling_name(LG_POOL_MEAN), "mean");
		assert_null(lg_pooling_name((lg_pooling) 9));
	}
	/* and then it works, with unit vectors */
	assert_int_equal(lg_context_embed(c, seqs, n, 2, LG_POOL_MEAN, true, out, &err), LG_OK);
	for (int s = 0; s < 2; s++)
	{
		double		ss = 0;

		for (int i = 0; i < 64; i++)
			ss += (double) out[s * 64 + i] * out[s * 64 + i];
		assert_true(fabs(ss - 1.0) < 1e-5);
	}
	free(longseq);
	lg_context_free(c);
	lg_model_free(m);
}

/* Embedding between two evals leaves the context's sequence (and its logits) as they were. */
static void
test_kv_untouched(void **state)
{
	char		buf[4096];
	const char *path = stories(buf);
	lg_model   *m;
	lg_context *c;
	lg_error	err;
	lg_token	prompt[5] = {1, 403, 407, 262, 500};
	lg_token	next = 300;
	lg_token	other[7] = {1, 290, 291, 292, 293, 294, 295};
	const lg_token *seqs[1] = {other};
	int32_t		n[1] = {7};
	float	   *want, *got, out[64];
	int32_t		nv;

	if (path == NULL)
		skip();
	c = open_ctx(path, 0, &m);
	nv = m->hp.n_vocab;
	want = malloc(sizeof(float) * nv);
	got = malloc(sizeof(float) * nv);
	assert_int_equal(lg_context_eval(c, prompt, 5, NULL, false, &err), LG_OK);
	assert_int_equal(lg_context_eval(c, &next, 1, want, false, &err), LG_OK);

	lg_context_reset(c);
	assert_int_equal(lg_context_eval(c, prompt, 5, NULL, false, &err), LG_OK);
	assert_int_equal(lg_context_embed(c, seqs, n, 1, LG_POOL_MEAN, true, out, &err), LG_OK);
	assert_int_equal(lg_context_pos(c), 5);
	assert_int_equal(lg_context_eval(c, &next, 1, got, false, &err), LG_OK);
	assert_memory_equal(want, got, sizeof(float) * nv);
	free(want);
	free(got);
	lg_context_free(c);
	lg_model_free(m);
}

/* A decoder sequence longer than n_batch is evaluated in chunks: same vectors as in one step. */
static void
test_decoder_chunks(void **state)
{
	char		buf[4096];
	const char *path = stories(buf);
	lg_model   *m1, *m2;
	lg_context *one, *chunked;
	lg_error	err;
	lg_token	toks[40];
	const lg_token *seqs[2] = {toks, toks + 3};
	int32_t		n[2] = {40, 11};

	if (path == NULL)
		skip();
	for (int i = 0; i < 40; i++)
		toks[i] = 260 + (i * 37) % 200;
	one = open_ctx(path, 64, &m1);
	chunked = open_ctx(path, 16, &m2);
	for (int pool = LG_POOL_NONE; pool <= LG_POOL_LAST; pool++)
	{
		float		a[51 * 64], b[51 * 64];
		int32_t		rows = pool == LG_POOL_NONE ? 51 : 2;

		assert_int_equal(lg_context_embed(one, seqs, n, 2, (lg_pooling) pool, false, a, &err), LG_OK);
		assert_int_equal(lg_context_embed(chunked, seqs, n, 2, (lg_pooling) pool, false, b, &err), LG_OK);
		for (int i = 0; i < rows * 64; i++)
			assert_true(fabsf(a[i] - b[i]) <= 1e-5f * (1.0f + fabsf(a[i])));
	}
	lg_context_free(one);
	lg_context_free(chunked);
	lg_model_free(m1);
	lg_model_free(m2);
}

/* A synthetic bert: an encoder, mean pooling from its metadata, n_batch grown to n_ctx. */
static void
test_encoder(void **state)
{
	const char *bin = getenv("LLAMAGPU_BIN");
	char		path[64], cmd[1024];
	lg_model   *m;
	lg_context *c;
	lg_error	err;
	lg_token	a[4] = {2, 50, 60, 3}, b[3] = {2, 70, 3};
	const lg_token *seqs[2] = {a, b};
	int32_t		n[2] = {4, 3};
	float		out[2 * 32], single[32];
	int			fd;

	if (bin == NULL || access(bin, X_OK) != 0)
	{
		printf("SKIP: set LLAMAGPU_BIN to the llamagpu binary to test a synth model\n");
		skip();
	}
	snprintf(path, sizeof(path), "/tmp/lg_test_embed_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd),
			 "'%s' synth --arch bert --dim 32 --layers 2 --heads 2 --ffn 64 --ctx 48 --vocab-wpm "
			 "--pooling cls --type f32 --seed 9 -o '%s' >/dev/null 2>&1", bin, path);
	if (system(cmd) != 0)
	{
		unlink(path);
		fail_msg("synth failed: %s", cmd);
	}
	c = open_ctx(path, 8, &m);
	unlink(path);
	assert_true(lg_model_is_encoder(m));
	assert_int_equal(lg_model_pooling(m), LG_POOL_CLS);
	assert_int_equal(lg_context_n_ctx(c), 48);
	assert_true(lg_context_n_batch(c) >= 48);
	assert_int_equal(lg_context_embed(c, seqs, n, 2, LG_POOL_DEFAULT, true, out, &err), LG_OK);
	assert_int_equal(lg_context_embed(c, seqs + 1, n + 1, 1, LG_POOL_DEFAULT, true, single, &err), LG_OK);
	for (int i = 0; i < 32; i++)
		assert_true(fabsf(out[32 + i] - single[i]) <= 1e-6f);
	/* an encoder has no logits */
	assert_int_equal(lg_context_eval(c, a, 4, out, false, &err), LG_ERR_UNSUPPORTED);
	lg_context_free(c);
	lg_model_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_kv_untouched),
		cmocka_unit_test(test_decoder_chunks),
		cmocka_unit_test(test_encoder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
