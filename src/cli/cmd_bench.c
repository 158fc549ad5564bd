/*
 * cmd_bench.c — `llamagpu bench`: prompt-processing and generation speed,
 * measured as llama.cpp's llama-bench does: pp = n_prompt random tokens in
 * one batch; tg = n_gen tokens one at a time; both on a cache that holds
 * -d DEPTH tokens first (0 by default: an empty cache), filled outside the
 * timed part; one warm-up run, then the mean over -r repetitions.
 *
 * -s SEQS (> 1) measures batched generation instead, as llama-batched-bench
 * does: SEQS sequences on one paged KV cache, each holding DEPTH tokens,
 * generate n_gen tokens each, one lg_context_eval_batch of SEQS tokens per
 * step; t/s counts every sequence's tokens.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_args.h"
#include "kv_cache.h"

/* Seconds on the monotonic clock. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Empty the cache, then fill depth positions (untimed); false on error. */
static bool
prefill(lg_context *c, const lg_token *depth_toks, int32_t depth, lg_error *err)
{
	lg_context_reset(c);
	return depth == 0 || lg_context_eval(c, depth_toks, depth, NULL, false, err) == LG_OK;
}

/*
 * One timed run after the prefill: n tokens in one batch (prompt processing)
 * or one at a time (generation).  Returns seconds, or -1 on error.
 */
static double
timed_run(lg_context *c, const lg_token *depth_toks, int32_t depth, const lg_token *toks, int32_t n,
		  bool one_at_a_time, float *logits, lg_error *err)
{
	int32_t		step = one_at_a_time ? 1 : n;
	double		t0;

	if (!prefill(c, depth_toks, depth, err))
		return -1;
	t0 = now_s();
	for (int32_t i = 0; i < n; i += step)
		if (lg_context_eval(c, toks + i, step, logits, false, err) != LG_OK)
			return -1;
	return now_s() - t0;
}

/*
 * One timed batched run: release every sequence, fill depth positions of
 * each (untimed, a sequence per call), then n_gen steps that each evaluate
 * one token of every sequence together.  Returns seconds, or -1 on error.
 */
static double
timed_batched(lg_context *c, lg_kv_cache *kv, lg_kv_seq *seqs, lg_batch_seq *b, int32_t n_seqs,
			  const lg_token *toks, int32_t depth, int32_t n_gen, float *logits, lg_error *err)
{
	double		t0;

	for (int32_t s = 0; s < n_seqs; s++)
	{
		lg_kv_seq_release(kv, &seqs[s]);
		if (lg_kv_seq_reserve(kv, &seqs[s], depth + n_gen, err) != LG_OK)
			return -1;
		for (int32_t done = 0; done < depth;)
		{
			int32_t		n = depth - done < lg_context_n_batch(c) ? depth - done : lg_context_n_batch(c);

			b[0] = (lg_batch_seq) {.kv = &seqs[s], .tokens = toks + done, .n_tokens = n};
			if (lg_context_eval_batch(c, b, 1, NULL, err) != LG_OK)
				return -1;
			done += n;
		}
	}
	t0 = now_s();
	for (int32_t i = 0; i < n_gen; i++)
	{
		for (int32_t s = 0; s < n_seqs; s++)
			b[s] = (lg_batch_seq) {.kv = &seqs[s], .tokens = toks + depth + (i + s) % n_gen,
			.n_tokens = 1, .want_logits = true};
		if (lg_context_eval_batch(c, b, n_seqs, logits, err) != LG_OK)
			return -1;
	}
	return now_s() - t0;
}

/*
 * The context of a batched run: a paged cache with room for n_seqs
 * sequences of n_pos positions, and a context on it.  false on error
 * (reported).
 */
static bool
open_batched(const lg_model *m, const cli_model_opts *o, int32_t n_seqs, int32_t n_pos,
			 lg_backend **be, lg_kv_cache **kv, lg_context **c)
{
	lg_kv_cache_params kp = {.type = o->kv_type};
	lg_context_params cp;
	lg_error	err;

	/* the backend first: a device's KV pool lives in its memory */
	*be = o->reference ? lg_backend_cpu_new(o->threads, 1, &err)
		: lg_backend_open(o->device ? o->device : "auto", o->threads, &err);
	if (*be == NULL)
		return cli_fail("bench", 1, "%s", err.msg), false;
	kp.backend = lg_backend_is_host(*be) ? NULL : *be;
	kp.n_blocks = n_seqs * ((n_pos + LG_KV_BLOCK_SIZE_DEFAULT - 1) / LG_KV_BLOCK_SIZE_DEFAULT);
	*kv = lg_kv_cache_new(m, &kp, &err);
	if (*kv == NULL)
		return cli_fail("bench", 1, "%s", err.msg), false;
	lg_context_params_default(&cp);
	cp.n_ctx = n_pos;
	cp.n_batch = o->n_batch > n_seqs ? o->n_batch : (n_seqs > 512 ? n_seqs : 512);
	cp.n_threads = o->threads;
	cp.backend = *be;
	cp.kv = *kv;
	*c = lg_context_new(m, &cp, &err);
	if (*c == NULL)
		return cli_fail("bench", 1, "%s", err.msg), false;
	return true;
}

/* Mean and standard deviation of tokens/s over reps runs. */
static void
stats(const double *secs, int reps, int32_t n_tok, double *mean, double *sd)
{
	double		s = 0, ss = 0;

	for (int i = 0; i < reps; i++)
		s += n_tok / secs[i];
	*mean = s / reps;
	for (int i = 0; i < reps; i++)
		ss += (n_tok / secs[i] - *mean) * (n_tok / secs[i] - *mean);
	*sd = reps > 1 ? sqrt(ss / (reps - 1)) : 0;
}

int
cmd_bench(int argc, char **argv)
{
	cli_model_opts o;
	int64_t		n_prompt = 128, n_gen = 32, reps = 5, depth = 0, n_seqs = 1;
	bool		json = false;
	lg_model   *m;
	lg_context *c = NULL;
	lg_kv_cache *kv = NULL;
	lg_backend *be = NULL;
	lg_kv_seq  *seqs = NULL;
	lg_batch_seq *bseqs = NULL;
	lg_token   *toks = NULL;
	float	   *logits = NULL;
	double	   *pp_s = NULL, *tg_s = NULL, pp_mean = 0, pp_sd = 0, tg_mean = 0, tg_sd = 0;
	uint64_t	rng = 42;
	lg_error	err;
	int			rc = 0;

	cli_model_opts_init(&o);
	for (int i = 1; i < argc; i++)
	{
		const char *val;
		int64_t    *target = NULL;
		int			r = cli_model_opt("bench", &o, argc, argv, &i);

		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--n-prompt") == 0)
			target = &n_prompt;
		else if (strcmp(argv[i], "-n") == 0 || strcmp(argv[i], "--n-gen") == 0)
			target = &n_gen;
		else if (strcmp(argv[i], "-r") == 0 || strcmp(argv[i], "--repetitions") == 0)
			target = &reps;
		else if (strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--depth") == 0)
			target = &depth;
		else if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--seqs") == 0)
			target = &n_seqs;
		else if (strcmp(argv[i], "--help") == 0)
		{
			printf("usage: llamagpu bench -m FILE [-p 128] [-n 32] [-d DEPTH] [-s SEQS] [-t THREADS] [-r 5] [--kv f16|f32] [--device cpu|auto|cuda:N] [--json]\n"
				   "  -d DEPTH  tokens already in the KV cache before each test (untimed), as llama-bench -d\n"
				   "  -s SEQS   generation of SEQS sequences batched together (tg only; t/s of all of them)\n");
			return 0;
		}
		else
			return cli_fail("bench", 2, "unknown option \"%s\"", argv[i]);
		if (target)
		{
			if ((val = cli_value("bench", argc, argv, &i)) == NULL)
				return 2;
			if (!cli_parse_i64(val, target == &reps || target == &n_seqs ? 1 : 0, 1 << 20, target))
				return cli_fail("bench", 2, "invalid value \"%s\" for %s", val, argv[i - 1]);
		}
	}
	if (n_seqs > 1)
	{
		if (n_gen == 0)
			return cli_fail("bench", 2, "-s measures generation: -n must be above 0");
		n_prompt = 0;
	}
	if (n_prompt == 0 && n_gen == 0)
		return cli_fail("bench", 2, "nothing to measure (-p and -n are both 0)");
	if (o.n_ctx == 0)
		o.n_ctx = (int32_t) (depth + (n_prompt > n_gen ? n_prompt : n_gen));
	if (o.n_batch == 0)
		o.n_batch = n_prompt > 0 ? (int32_t) n_prompt : 512;
	if (!cli_open_model("bench", &o, &m, n_seqs > 1 ? NULL : &c))
		return o.model ? 1 : 2;
	if (n_seqs > 1 && !open_batched(m, &o, (int32_t) n_seqs, (int32_t) (depth + n_gen), &be, &kv, &c))
	{
		rc = 1;
		goto done;
	}

	toks = malloc(sizeof(lg_token) * (depth + n_prompt + n_gen + 1));
	logits = malloc(sizeof(float) * m->hp.n_vocab * n_seqs);
	pp_s = calloc(reps, sizeof(double));
	tg_s = calloc(reps, sizeof(double));
	seqs = calloc(n_seqs, sizeof(lg_kv_seq));
	bseqs = calloc(n_seqs, sizeof(lg_batch_seq));
	if (!toks || !logits || !pp_s || !tg_s || !seqs || !bseqs)
	{
		rc = cli_fail("bench", 1, "out of memory");
		goto done;
	}
	for (int64_t i = 0; i < depth + n_prompt + n_gen; i++)
	{
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		toks[i] = (lg_token) ((rng >> 33) % m->hp.n_vocab);
	}
	lg_error_clear(&err);
	/* warm-up, then the measured repetitions */
	for (int64_t r = -1; r < reps; r++)
	{
		double		t;

		if (n_prompt > 0)
		{
			if ((t = timed_run(c, toks, (int32_t) depth, toks + depth, (int32_t) n_prompt, false,
							   logits, &err)) < 0)
				break;
			if (r >= 0)
				pp_s[r] = t;
		}
		if (n_gen > 0 && n_seqs > 1)
		{
			if ((t = timed_batched(c, kv, seqs, bseqs, (int32_t) n_seqs, toks, (int32_t) depth,
								   (int32_t) n_gen, logits, &err)) < 0)
				break;
			if (r >= 0)
				tg_s[r] = t;
		}
		else if (n_gen > 0)
		{
			if ((t = timed_run(c, toks, (int32_t) depth, toks + depth + n_prompt, (int32_t) n_gen, true,
							   logits, &err)) < 0)
				break;
			if (r >= 0)
				tg_s[r] = t;
		}
	}
	if (err.status != LG_OK)
	{
		rc = cli_fail("bench", 1, "%s", err.msg);
		goto done;
	}
	if (n_prompt > 0)
		stats(pp_s, (int) reps, (int32_t) n_prompt, &pp_mean, &pp_sd);
	if (n_gen > 0)
		stats(tg_s, (int) reps, (int32_t) (n_gen * n_seqs), &tg_mean, &tg_sd);
	if (json)
		printf("{\"model\":\"%s\",\"file_type\":\"%s\",\"file_size\":%llu,\"n_params\":%lld,"
			   "\"threads\":%d,\"simd\":\"%s\",\"device\":\"%s\",\"kv\":\"%s\",\"n_prompt\":%lld,\"n_gen\":%lld,\"depth\":%lld,\"seqs\":%lld,\"repetitions\":%lld,"
			   "\"pp_tps\":%.3f,\"pp_stddev\":%.3f,\"tg_tps\":%.3f,\"tg_stddev\":%.3f}\n",
			   lg_arch_name(m->hp.arch), m->hp.ftype_name, (unsigned long long) m->file_size,
			   (long long) m->hp.n_params, o.threads, o.reference ? "reference" : lg_cpu_simd_level(),
			   lg_context_device(c), o.kv_type == LG_KV_F16 ? "f16" : "f32", (long long) n_prompt, (long long) n_gen,
			   (long long) depth, (long long) n_seqs, (long long) reps, pp_mean, pp_sd, tg_mean, tg_sd);
	else
	{
		printf("| model | type | size | params | threads | test | t/s |\n|---|---|---:|---:|---:|---|---:|\n");
		if (n_prompt > 0)
			printf("| %s | %s | %.2f GiB | %.2f B | %d | pp%lld%s%.0lld | %.2f ± %.2f |\n",
				   lg_arch_name(m->hp.arch), m->hp.ftype_name, m->file_size / 1073741824.0,
				   m->hp.n_params / 1e9, o.threads, (long long) n_prompt, depth ? " @ d" : "",
				   (long long) depth, pp_mean, pp_sd);
		if (n_gen > 0)
			printf("| %s | %s | %.2f GiB | %.2f B | %d | tg%lld%s%.0lld%s%.0lld | %.2f ± %.2f |\n",
				   lg_arch_name(m->hp.arch), m->hp.ftype_name, m->file_size / 1073741824.0,
				   m->hp.n_params / 1e9, o.threads, (long long) n_gen, depth ? " @ d" : "",
				   (long long) depth, n_seqs > 1 ? " x" : "", (long long) (n_seqs > 1 ? n_seqs : 0),
				   tg_mean, tg_sd);
	}

done:
	if (kv)
		for (int64_t i = 0; seqs && i < n_seqs; i++)
			lg_kv_seq_release(kv, &seqs[i]);
	free(seqs);
	free(bseqs);
	free(toks);
	free(logits);
	free(pp_s);
	free(tg_s);
	lg_context_free(c);
	lg_kv_cache_free(kv);
	if (be)
		be->free(be);
	lg_model_free(m);
	return rc;
}
