/*
 * cmd_embed.c — `llamagpu embed`: embeddings of texts given as arguments
 * (or one per stdin line), computed with lg_context_embed in batches.
 *
 * Plain output is one line per text (per token with --pooling none) of
 * space-separated floats; --json prints one object with every vector.
 * Floats are printed with 9 significant digits, enough to round-trip.
 *
 * --bench-len L embeds --bench-count N made-up sequences of L tokens
 * (random ids between the model's own first and last special tokens, as
 * a tokenized text would have them) in calls of --batch texts, -r times
 * after a warm-up, and prints embeddings per second (scripts/bench-embed.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_args.h"
#include "embed.h"
#include "json.h"

typedef struct embed_opts
{
	cli_model_opts model;
	lg_pooling	pool;
	bool		normalize;
	bool		json;
	int64_t		batch;			/* texts per lg_context_embed call */
	int64_t		bench_len;		/* > 0: benchmark sequences of this many tokens */
	int64_t		bench_count;	/* sequences per benchmark repetition */
	int64_t		reps;
	char	  **texts;			/* the arguments that are texts */
	int			n_texts;
} embed_opts;

/* Parse the options; texts are the arguments that are not options. */
static int
parse_opts(int argc, char **argv, embed_opts *o)
{
	memset(o, 0, sizeof(*o));
	cli_model_opts_init(&o->model);
	o->pool = LG_POOL_DEFAULT;
	o->normalize = true;
	o->batch = 64;
	o->bench_count = 64;
	o->reps = 3;
	o->texts = calloc(argc, sizeof(char *));
	if (o->texts == NULL)
		return cli_fail("embed", 1, "out of memory");
	for (int i = 1; i < argc; i++)
	{
		const char *v;
		int			r;

		if (strcmp(argv[i], "--batch") == 0)
		{
			/* texts per call here, not the context's n_batch (that is -b) */
			if ((v = cli_value("embed", argc, argv, &i)) == NULL)
				return 2;
			if (!cli_parse_i64(v, 1, 1 << 20, &o->batch))
				return cli_fail("embed", 2, "--batch must be an integer from 1 to %d", 1 << 20);
			continue;
		}
		if (strcmp(argv[i], "--bench-len") == 0 || strcmp(argv[i], "--bench-count") == 0 ||
			strcmp(argv[i], "-r") == 0)
		{
			int64_t    *dst = argv[i][1] == 'r' ? &o->reps : argv[i][8] == 'l' ? &o->bench_len : &o->bench_count;
			const char *opt = argv[i];

			if ((v = cli_value("embed", argc, argv, &i)) == NULL)
				return 2;
			if (!cli_parse_i64(v, 1, 1 << 20, dst))
				return cli_fail("embed", 2, "%s must be an integer from 1 to %d", opt, 1 << 20);
			continue;
		}
		if (strcmp(argv[i], "--pooling") == 0)
		{
			lg_error	err;

			if ((v = cli_value("embed", argc, argv, &i)) == NULL)
				return 2;
			lg_error_clear(&err);
			if (lg_pooling_parse(v, &o->pool, &err) != LG_OK)
				return cli_fail("embed", 2, "%s", err.msg);
			continue;
		}
		r = cli_model_opt("embed", &o->model, argc, argv, &i);
		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--no-normalize") == 0)
			o->normalize = false;
		else if (strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (strcmp(argv[i], "--help") == 0)
		{
			printf("usage: llamagpu embed -m FILE [--pooling none|mean|cls|last] [--no-normalize]\n"
				   "                      [--batch N] [--json] [-c N] [-b N] [-t N] [TEXT ...]\n"
				   "  embeds each TEXT (or each line of stdin when none is given)\n"
				   "  --pooling       how token states become one vector (default: the model's)\n"
				   "  --no-normalize  keep the vectors' length (default: unit L2 length)\n"
				   "  --batch N       texts embedded together (default 64)\n"
				   "  --json          one JSON object: {\"model\", \"n_embd\", \"pooling\", \"embeddings\"}\n"
				   "  --bench-len L [--bench-count N (64)] [-r R (3)]\n"
				   "                  time N made-up sequences of L tokens instead (prints one JSON line)\n");
			exit(0);
		}
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return cli_fail("embed", 2, "unknown option \"%s\"", argv[i]);
		else
			o->texts[o->n_texts++] = argv[i];
	}
	if (o->model.model == NULL)
		return cli_fail("embed", 2, "no model given (use -m FILE)");
	return 0;
}

/* Read stdin's lines (without their newlines) as the texts. */
static bool
read_stdin_texts(embed_opts *o)
{
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	int			room = 0;

	free(o->texts);
	o->texts = NULL;
	while ((len = getline(&line, &cap, stdin)) >= 0)
	{
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (o->n_texts == room)
		{
			char	  **more = realloc(o->texts, sizeof(char *) * (room = room ? 2 * room : 64));

			if (more == NULL)
				return false;
			o->texts = more;
		}
		if ((o->texts[o->n_texts++] = strdup(line)) == NULL)
			return false;
	}
	free(line);
	return true;
}

/* Tokenize text with the model's special tokens (BOS; [CLS] ... [SEP]) into *ids. */
static int64_t
tokenize_text(const lg_model *m, const char *text, lg_token **ids, lg_error *err)
{
	int64_t		cap = (int64_t) strlen(text) + 8;
	int64_t		n;

	*ids = malloc(sizeof(lg_token) * cap);
	if (*ids == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory"), -1;
	n = lg_tokenize(m->vocab, text, strlen(text), true, false, *ids, cap, err);
	if (n > cap)
	{
		lg_token   *more = realloc(*ids, sizeof(lg_token) * n);

		if (more == NULL)
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory"), -1;
		*ids = more;
		n = lg_tokenize(m->vocab, text, strlen(text), true, false, *ids, n, err);
	}
	return n;
}

/* Print n vectors of d floats, plain or as JSON array elements. */
static void
print_vectors(const float *v, int64_t n, int64_t d, bool json, bool *first)
{
	lg_buf		b = {0};

	for (int64_t i = 0; i < n; i++)
	{
		if (json)
			lg_buf_append(&b, *first ? "\n  [" : ",\n  [", *first ? 4 : 5);
		*first = false;
		for (int64_t j = 0; j < d; j++)
			lg_buf_appendf(&b, j ? (json ? ", %.9g" : " %.9g") : "%.9g", v[i * d + j]);
		lg_buf_append(&b, json ? "]" : "\n", 1);
		fwrite(b.data, 1, b.len, stdout);
		b.len = 0;
	}
	lg_buf_free(&b);
}

/* Monotonic seconds. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The benchmark: bench_count sequences of bench_len tokens (the model's
 * BOS/[CLS] first, [SEP] or nothing last, random ids between), embedded in
 * calls of o->batch, one warm-up then o->reps timed runs; prints the mean
 * embeddings per second.
 */
static int
run_bench(const embed_opts *o, lg_model *m, lg_context *c)
{
	const int64_t n = o->bench_count, len = o->bench_len, d = lg_model_n_embd(m);
	const lg_token first = lg_vocab_bos(m->vocab);
	const lg_token last = m->hp.encoder ? lg_vocab_sep(m->vocab) : LG_TOKEN_NULL;
	lg_token   *toks = malloc(sizeof(lg_token) * n * len);
	const lg_token **seqs = malloc(sizeof(lg_token *) * n);
	int32_t    *lens = malloc(sizeof(int32_t) * n);
	float	   *out = malloc(sizeof(float) * o->batch * d);
	uint64_t	s = 1;
	double		sum = 0.0, best = 0.0;
	lg_error	err;
	int			rc = 1;

	if (toks == NULL || seqs == NULL || lens == NULL || out == NULL)
	{
		cli_fail("embed", 1, "out of memory");
		goto done;
	}
	for (int64_t i = 0; i < n; i++)
	{
		for (int64_t j = 0; j < len; j++)
		{
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			/* ids past the first thousand: ordinary tokens in every vocabulary we synthesize */
			toks[i * len + j] = (lg_token) (m->hp.n_vocab > 2000 ? 1000 + (s >> 33) % (m->hp.n_vocab - 1000)
											: 5 + (s >> 33) % (m->hp.n_vocab - 5));
		}
		if (first != LG_TOKEN_NULL)
			toks[i * len] = first;
		if (last != LG_TOKEN_NULL && len > 1)
			toks[i * len + len - 1] = last;
		seqs[i] = toks + i * len;
		lens[i] = (int32_t) len;
	}
	for (int64_t r = 0; r <= o->reps; r++)
	{
		double		t0 = now_s(), t;

		for (int64_t i = 0; i < n; i += o->batch)
		{
			int32_t		nb = (int32_t) (n - i < o->batch ? n - i : o->batch);

			if (lg_context_embed(c, seqs + i, lens + i, nb, o->pool, o->normalize, out, &err) != LG_OK)
			{
				cli_fail("embed", 1, "%s", err.msg);
				goto done;
			}
		}
		t = (double) n / (now_s() - t0);
		if (r == 0)
			continue;			/* the warm-up */
		sum += t;
		best = t > best ? t : best;
	}
	printf("{\"arch\": \"%s\", \"n_embd\": %lld, \"type\": \"%s\", \"seq_len\": %lld, \"batch\": %lld, "
		   "\"count\": %lld, \"reps\": %lld, \"emb_per_s\": %.3f, \"best_emb_per_s\": %.3f, \"tokens_per_s\": %.1f}\n",
		   m->hp.arch_name, (long long) d, m->hp.ftype_name, (long long) len, (long long) o->batch,
		   (long long) n, (long long) o->reps, sum / o->reps, best, sum / o->reps * len);
	rc = 0;
done:
	free(toks);
	free(seqs);
	free(lens);
	free(out);
	return rc;
}

int
cmd_embed(int argc, char **argv)
{
	embed_opts	o;
	lg_model   *m = NULL;
	lg_context *c = NULL;
	lg_error	err;
	lg_token  **ids = NULL;
	int32_t    *n_ids = NULL;
	float	   *out = NULL;
	int			rc = 1;
	int64_t		d;
	lg_pooling	pool;
	bool		first = true;

	lg_error_clear(&err);
	if ((rc = parse_opts(argc, argv, &o)) != 0)
		return rc;
	rc = 1;
	if (o.bench_len > 0)
	{
		if (!cli_open_model("embed", &o.model, &m, &c))
			return 1;
		rc = run_bench(&o, m, c);
		lg_context_free(c);
		lg_model_free(m);
		free(o.texts);
		return rc;
	}
	if (o.n_texts == 0 && !read_stdin_texts(&o))
		return cli_fail("embed", 1, "out of memory reading stdin");
	if (o.n_texts == 0)
		return cli_fail("embed", 2, "no texts to embed (give them as arguments or stdin lines)");
	if (!cli_open_model("embed", &o.model, &m, &c))
		return 1;
	d = lg_model_n_embd(m);
	pool = o.pool == LG_POOL_DEFAULT ? lg_model_pooling(m) : o.pool;
	ids = calloc(o.n_texts, sizeof(lg_token *));
	n_ids = calloc(o.n_texts, sizeof(int32_t));
	if (ids == NULL || n_ids == NULL)
	{
		cli_fail("embed", 1, "out of memory");
		goto done;
	}
	for (int i = 0; i < o.n_texts; i++)
	{
		int64_t		n;

		if (o.texts[i][0] == '\0')
		{
			cli_fail("embed", 1, "text %d is empty", i + 1);
			goto done;
		}
		n = tokenize_text(m, o.texts[i], &ids[i], &err);
		if (n < 0)
		{
			cli_fail("embed", 1, "text %d: %s", i + 1, err.msg);
			goto done;
		}
		n_ids[i] = (int32_t) n;
	}

	if (o.json)
		printf("{\"model\": \"%s\", \"n_embd\": %lld, \"pooling\": \"%s\", \"normalize\": %s, \"embeddings\": [",
			   m->hp.arch_name, (long long) d, lg_pooling_name(pool), o.normalize ? "true" : "false");
	for (int i0 = 0; i0 < o.n_texts; i0 += (int) o.batch)
	{
		int			nb = o.n_texts - i0 < o.batch ? o.n_texts - i0 : (int) o.batch;
		int64_t		rows = nb;

		if (pool == LG_POOL_NONE)
		{
			rows = 0;
			for (int i = 0; i < nb; i++)
				rows += n_ids[i0 + i];
		}
		free(out);
		out = malloc(sizeof(float) * rows * d);
		if (out == NULL)
		{
			cli_fail("embed", 1, "out of memory");
			goto done;
		}
		if (lg_context_embed(c, (const lg_token *const *) ids + i0, n_ids + i0, nb, pool,
							 o.normalize, out, &err) != LG_OK)
		{
			if (o.json)
				printf("]}\n");
			cli_fail("embed", 1, "%s", err.msg);
			goto done;
		}
		if (o.json && pool == LG_POOL_NONE)
		{
			/* one array of token vectors per text */
			int64_t		r = 0;

			for (int i = 0; i < nb; i++)
			{
				bool		inner = true;

				printf(first ? "\n [" : ",\n [");
				first = false;
				print_vectors(out + r * d, n_ids[i0 + i], d, true, &inner);
				printf("]");
				r += n_ids[i0 + i];
			}
		}
		else
			print_vectors(out, rows, d, o.json, &first);
	}
	if (o.json)
		printf("\n]}\n");
	rc = 0;

done:
	if (ids)
		for (int i = 0; i < o.n_texts; i++)
			free(ids[i]);
	free(ids);
	free(n_ids);
	free(out);
	lg_context_free(c);
	lg_model_free(m);
	return rc;
}
