/*
 * cmd_grammar.c — `llamagpu grammar`: check a text against a grammar, and
 * measure token-mask time over a vocabulary.
 *
 *   llamagpu grammar check --gbnf FILE [--text STRING | --file FILE] [-m MODEL.gguf]
 *   llamagpu grammar bench --gbnf FILE -m VOCAB.gguf [--text FILE] [--json]
 *
 * The grammar comes from one function, grammar_source(), so other sources
 * (a JSON Schema compiled to GBNF) slot in next to --gbnf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_args.h"
#include "grammar.h"
#include "json.h"

typedef struct grammar_opts
{
	const char *gbnf_file;		/* --gbnf */
	const char *text;			/* --text STRING (check) */
	const char *text_file;		/* --file (check) or --text FILE (bench) */
	const char *model;			/* -m */
	int64_t		walk_tokens;	/* bench without a text: tokens of a random walk */
	int64_t		seed;
	bool		json;
} grammar_opts;

/* Read a whole file into b; false with err set. */
static bool
read_file(const char *path, lg_buf *b, lg_error *err)
{
	FILE	   *f = fopen(path, "rb");
	char		chunk[65536];
	size_t		n;

	if (f == NULL)
		return lg_error_set(err, LG_ERR_IO, "cannot open %s", path), false;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!lg_buf_append(b, chunk, n))
		{
			fclose(f);
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory reading %s", path), false;
		}
	if (ferror(f))
	{
		fclose(f);
		return lg_error_set(err, LG_ERR_IO, "cannot read %s", path), false;
	}
	fclose(f);
	if (b->data == NULL)
		lg_buf_append(b, "", 0);
	return true;
}

/*
 * The GBNF text the options name, into out.  The one place to add another
 * grammar source (e.g. --json-schema FILE compiled with lg_json_schema_to_gbnf).
 */
static bool
grammar_source(const grammar_opts *o, lg_buf *out, lg_error *err)
{
	return read_file(o->gbnf_file, out, err);
}

/* Parse the options shared by both subcommands; 0 or an exit status. */
static int
parse_opts(const char *cmd, int argc, char **argv, grammar_opts *o, bool bench)
{
	memset(o, 0, sizeof(*o));
	o->walk_tokens = 256;
	o->seed = 1;
	for (int i = 2; i < argc; i++)
	{
		const char *a = argv[i];
		const char *val;

		if (strcmp(a, "--json") == 0)
		{
			o->json = true;
			continue;
		}
		if (strcmp(a, "--help") == 0)
		{
			printf("usage: llamagpu grammar check --gbnf FILE [--text STRING | --file FILE] [-m MODEL.gguf]\n"
				   "       llamagpu grammar bench --gbnf FILE -m VOCAB.gguf [--text FILE] [--tokens N] [--seed S] [--json]\n"
				   "  check  parses the grammar; with a text, says whether the grammar accepts it byte by\n"
				   "         byte and, with -m, token by token (exit 0 accepted, 1 rejected or invalid)\n"
				   "  bench  walks the text (or a random walk of N allowed tokens) token by token and\n"
				   "         prints the time of each token mask: p50/p99/max in microseconds, cold\n"
				   "         (first pass, caches filling) and warm (second pass), and cache counters\n");
			exit(0);
		}
		if ((val = cli_value(cmd, argc, argv, &i)) == NULL)
			return 2;
		if (strcmp(a, "--gbnf") == 0)
			o->gbnf_file = val;
		else if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0)
			o->model = val;
		else if (strcmp(a, "--text") == 0 && bench)
			o->text_file = val;
		else if (strcmp(a, "--text") == 0)
			o->text = val;
		else if (strcmp(a, "--file") == 0 && !bench)
			o->text_file = val;
		else if (strcmp(a, "--tokens") == 0 && bench)
		{
			if (!cli_parse_i64(val, 1, 1000000, &o->walk_tokens))
				return cli_fail(cmd, 2, "invalid --tokens \"%s\" (1 to 1000000)", val);
		}
		else if (strcmp(a, "--seed") == 0 && bench)
		{
			if (!cli_parse_i64(val, 0, INT64_MAX, &o->seed))
				return cli_fail(cmd, 2, "invalid --seed \"%s\"", val);
		}
		else
			return cli_fail(cmd, 2, "unknown option \"%s\"", a);
	}
	if (o->gbnf_file == NULL)
		return cli_fail(cmd, 2, "no grammar given (use --gbnf FILE)");
	if (o->text != NULL && o->text_file != NULL)
		return cli_fail(cmd, 2, "give --text or --file, not both");
	if (bench && o->model == NULL)
		return cli_fail(cmd, 2, "bench needs a vocabulary (use -m VOCAB.gguf)");
	return 0;
}

/* Load the grammar the options name; NULL after printing the error. */
static lg_grammar *
load_grammar(const char *cmd, const grammar_opts *o)
{
	lg_buf		src;
	lg_error	err;
	lg_grammar *g;

	lg_buf_init(&src);
	lg_error_clear(&err);
	if (!grammar_source(o, &src, &err))
	{
		lg_buf_free(&src);
		cli_fail(cmd, 1, "%s", err.msg);
		return NULL;
	}
	g = lg_grammar_parse(src.data, src.len, &err);
	lg_buf_free(&src);
	if (g == NULL)
		cli_fail(cmd, 1, "%s: %s", o->gbnf_file, err.msg);
	return g;
}

/* Load a vocabulary-bearing GGUF; NULL after printing the error. */
static lg_vocab *
load_vocab(const char *cmd, const char *path)
{
	lg_error	err;
	lg_gguf    *gg;
	lg_vocab   *v;

	lg_error_clear(&err);
	if ((gg = lg_gguf_open(path, &err)) == NULL)
	{
		cli_fail(cmd, 1, "%s: %s", path, err.msg);
		return NULL;
	}
	v = lg_vocab_load(gg, &err);
	lg_gguf_close(gg);
	if (v == NULL)
		cli_fail(cmd, 1, "%s: %s", path, err.msg);
	return v;
}

/* Tokenize text without BOS or special tokens; the count, or -1 after printing the error. */
static int64_t
tokenize_raw(const char *cmd, const lg_vocab *v, const char *text, size_t len, lg_token **out)
{
	lg_error	err;
	int64_t		n = lg_tokenize(v, text, len, false, false, NULL, 0, &err);

	*out = NULL;
	if (n < 0)
		return cli_fail(cmd, 1, "tokenize: %s", err.msg), -1;
	*out = malloc(sizeof(lg_token) * (size_t) (n + 1));
	if (*out == NULL || lg_tokenize(v, text, len, false, false, *out, n, &err) != n)
		return cli_fail(cmd, 1, "tokenize failed"), -1;
	return n;
}

/* The first k such that the pieces of ids[k..n) spell exactly text; -1 if none. */
static int64_t
pieces_suffix(const lg_vocab *v, const lg_token *ids, int64_t n, const char *text, size_t len)
{
	size_t		end = len;
	char		buf[512];

	/* match pieces from the last token backwards */
	for (int64_t k = n; k-- > 0;)
	{
		int32_t		pl = lg_token_to_piece(v, ids[k], buf, sizeof(buf), false);

		if (pl < 0 || pl > (int32_t) sizeof(buf))
			return -1;
		if ((size_t) pl > end)
			return -1;
		if (memcmp(text + end - pl, buf, (size_t) pl) != 0)
			return -1;
		end -= (size_t) pl;
		if (end == 0)
			return k;
	}
	return len == 0 ? n : -1;
}

/*
 * Tokens whose output bytes are exactly text, as a model would generate it
 * after a prompt.  SentencePiece vocabularies put a space before the first
 * token of a text; tokenizing after a newline and dropping the tokens of
 * that prefix avoids it.  The count, or -1 after printing the error.
 */
static int64_t
tokenize(const char *cmd, const lg_vocab *v, const char *text, size_t len, lg_token **out)
{
	int64_t		n = tokenize_raw(cmd, v, text, len, out),
				k;
	char	   *pre;

	if (n < 0 || pieces_suffix(v, *out, n, text, len) == 0)
		return n;
	free(*out);
	if ((pre = malloc(len + 2)) == NULL)
		return cli_fail(cmd, 1, "out of memory"), -1;
	pre[0] = '\n';
	memcpy(pre + 1, text, len);
	n = tokenize_raw(cmd, v, pre, len + 1, out);
	free(pre);
	if (n < 0)
		return n;
	k = pieces_suffix(v, *out, n, text, len);
	if (k < 0)
		return cli_fail(cmd, 1, "cannot tokenize the text so that its tokens spell it exactly"), -1;
	memmove(*out, *out + k, sizeof(lg_token) * (size_t) (n - k));
	return n - k;
}

/* Line and column (1-based, in bytes) of offset off in text. */
static void
line_col(const char *text, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++)
	{
		if (text[i] == '\n')
			(*line)++, *col = 1;
		else
			(*col)++;
	}
}

/* `grammar check`. */
static int
grammar_check(int argc, char **argv)
{
	const char *cmd = "grammar check";
	grammar_opts o;
	lg_grammar *g;
	lg_buf		text;
	lg_error	err;
	lg_grammar_matcher *m;
	int			rc;
	size_t		i;

	if ((rc = parse_opts(cmd, argc, argv, &o, false)) != 0)
		return rc;
	if ((g = load_grammar(cmd, &o)) == NULL)
		return 1;
	lg_buf_init(&text);
	if (o.text != NULL)
		lg_buf_append(&text, o.text, strlen(o.text));
	else if (o.text_file != NULL && !read_file(o.text_file, &text, &err))
	{
		lg_grammar_free(g);
		return cli_fail(cmd, 1, "%s", err.msg);
	}
	if (text.data == NULL)
	{
		size_t		nr,
					ne;

		lg_grammar_size(g, &nr, &ne);
		printf("grammar ok: %zu rules, %zu elements\n", nr, ne);
		lg_grammar_free(g);
		return 0;
	}
	if ((m = lg_grammar_matcher_new(g, NULL, &err)) == NULL)
	{
		lg_grammar_free(g);
		lg_buf_free(&text);
		return cli_fail(cmd, 1, "%s", err.msg);
	}
	rc = 0;
	for (i = 0; i < text.len; i++)
		if (!lg_grammar_matcher_accept_bytes(m, text.data + i, 1))
			break;
	if (i < text.len)
	{
		size_t		line,
					col;

		line_col(text.data, i, &line, &col);
		printf("bytes: rejected at byte %zu (line %zu, column %zu)\n", i, line, col);
		rc = 1;
	}
	else if (!lg_grammar_matcher_is_complete(m))
	{
		printf("bytes: incomplete (the text is a valid prefix; the grammar expects more)\n");
		rc = 1;
	}
	else
		printf("bytes: accepted\n");
	lg_grammar_matcher_free(m);

	if (o.model != NULL)
	{
		lg_vocab   *v = load_vocab(cmd, o.model);
		lg_grammar_vocab *gv = NULL;
		lg_token   *ids = NULL;
		int64_t		n,
					k;
		uint64_t   *mask;

		if (v == NULL || (gv = lg_grammar_vocab_new(v, &err)) == NULL ||
			(m = lg_grammar_matcher_new(g, gv, &err)) == NULL)
		{
			if (v != NULL)
				cli_fail(cmd, 1, "%s", err.msg);
			lg_grammar_vocab_free(gv);
			lg_vocab_free(v);
			lg_grammar_free(g);
			lg_buf_free(&text);
			return 1;
		}
		n = tokenize(cmd, v, text.data, text.len, &ids);
		mask = malloc(((size_t) lg_vocab_n_tokens(v) + 63) / 64 * sizeof(uint64_t));
		for (k = 0; k < n && mask != NULL; k++)
		{
			bool		in_mask;

			lg_grammar_matcher_fill_mask(m, mask);
			in_mask = (mask[ids[k] >> 6] >> (ids[k] & 63)) & 1;
			if (!lg_grammar_matcher_accept_token(m, ids[k]))
				break;
			if (!in_mask)
			{
				printf("tokens: token %lld (id %d) accepted but missing from the mask (a bug)\n",
					   (long long) k, ids[k]);
				rc = 1;
			}
		}
		if (n >= 0 && k < n)
		{
			lg_buf		piece;
			char		buf[256];
			int32_t		len = lg_token_to_piece(v, ids[k], buf, sizeof(buf), false);

			lg_buf_init(&piece);
			lg_buf_append_json_str(&piece, buf, len > 0 ? (size_t) (len < 256 ? len : 256) : 0);
			printf("tokens: rejected at token %lld of %lld (id %d, %s)\n", (long long) k, (long long) n,
				   ids[k], piece.data);
			lg_buf_free(&piece);
			rc = 1;
		}
		else if (n >= 0)
		{
			lg_token	eos = lg_vocab_eos(v);
			bool		done = lg_grammar_matcher_is_complete(m);

			printf("tokens: %s, %lld tokens%s\n", done ? "accepted" : "incomplete", (long long) n,
				   done && eos != LG_TOKEN_NULL ? ", end of generation allowed" : "");
			if (!done)
				rc = 1;
		}
		else
			rc = 1;
		free(mask);
		free(ids);
		lg_grammar_matcher_free(m);
		lg_grammar_vocab_free(gv);
		lg_vocab_free(v);
	}
	lg_buf_free(&text);
	lg_grammar_free(g);
	return rc;
}

/* Monotonic clock in microseconds. */
static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

/* qsort order of doubles. */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* Percentile p (0..1) of n sorted values. */
static double
pct(const double *v, size_t n, double p)
{
	size_t		i;

	if (n == 0)
		return 0;
	i = (size_t) (p * (double) (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* Timings of one pass: all steps, and split by how much of the vocabulary was allowed. */
typedef struct pass_times
{
	double	   *all;
	double	   *wide;			/* steps allowing more than half the vocabulary (inside strings) */
	double	   *narrow;			/* the others (between values, keys, numbers) */
	size_t		n, n_wide, n_narrow;
} pass_times;

/* Print one pass's percentiles. */
static void
print_pass(const char *name, pass_times *p, bool json, bool last)
{
	qsort(p->all, p->n, sizeof(double), cmp_double);
	qsort(p->wide, p->n_wide, sizeof(double), cmp_double);
	qsort(p->narrow, p->n_narrow, sizeof(double), cmp_double);
	if (json)
		printf("\"%s\": {\"steps\": %zu, \"p50_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.2f, "
			   "\"wide_steps\": %zu, \"wide_p50_us\": %.2f, \"wide_p99_us\": %.2f, "
			   "\"narrow_steps\": %zu, \"narrow_p50_us\": %.2f, \"narrow_p99_us\": %.2f}%s\n",
			   name, p->n, pct(p->all, p->n, 0.5), pct(p->all, p->n, 0.99), pct(p->all, p->n, 1),
			   p->n_wide, pct(p->wide, p->n_wide, 0.5), pct(p->wide, p->n_wide, 0.99),
			   p->n_narrow, pct(p->narrow, p->n_narrow, 0.5), pct(p->narrow, p->n_narrow, 0.99),
			   last ? "" : ",");
	else
		printf("%s pass: %zu masks, p50 %.1f us, p99 %.1f us, max %.1f us; "
			   "wide (>50%% allowed) %zu: p50 %.1f p99 %.1f; narrow %zu: p50 %.1f p99 %.1f\n",
			   name, p->n, pct(p->all, p->n, 0.5), pct(p->all, p->n, 0.99), pct(p->all, p->n, 1),
			   p->n_wide, pct(p->wide, p->n_wide, 0.5), pct(p->wide, p->n_wide, 0.99),
			   p->n_narrow, pct(p->narrow, p->n_narrow, 0.5), pct(p->narrow, p->n_narrow, 0.99));
}

/* Pick an allowed token at random (xorshift), avoiding EOG while others exist; -1 if none. */
static lg_token
pick_allowed(const uint64_t *mask, const lg_grammar_vocab *gv, const lg_vocab *v, uint64_t *rng)
{
	int32_t		n = lg_grammar_vocab_n_tokens(gv);
	int32_t		count = 0,
				k;
	lg_token	eog = LG_TOKEN_NULL;

	for (int32_t t = 0; t < n; t++)
		if ((mask[t >> 6] >> (t & 63)) & 1)
		{
			if (lg_vocab_is_eog(v, t))
				eog = t;
			else
				count++;
		}
	if (count == 0)
		return eog;
	*rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
	k = (int32_t) (*rng % (uint64_t) count);
	for (int32_t t = 0; t < n; t++)
		if (((mask[t >> 6] >> (t & 63)) & 1) && !lg_vocab_is_eog(v, t) && k-- == 0)
			return t;
	return eog;
}

/* `grammar bench`. */
static int
grammar_bench(int argc, char **argv)
{
	const char *cmd = "grammar bench";
	grammar_opts o;
	lg_grammar *g;
	lg_vocab   *v;
	lg_grammar_vocab *gv;
	lg_grammar_matcher *m;
	lg_error	err;
	lg_token   *ids = NULL;
	int64_t		n;
	uint64_t   *mask;
	pass_times	pass[2];
	lg_grammar_cache_stats st;
	int			rc;
	int32_t		n_vocab;
	size_t		words;
	double		t_vocab;

	memset(pass, 0, sizeof(pass));
	if ((rc = parse_opts(cmd, argc, argv, &o, true)) != 0)
		return rc;
	if ((g = load_grammar(cmd, &o)) == NULL)
		return 1;
	if ((v = load_vocab(cmd, o.model)) == NULL)
	{
		lg_grammar_free(g);
		return 1;
	}
	t_vocab = now_us();
	gv = lg_grammar_vocab_new(v, &err);
	t_vocab = now_us() - t_vocab;
	if (gv == NULL || (m = lg_grammar_matcher_new(g, gv, &err)) == NULL)
	{
		cli_fail(cmd, 1, "%s", err.msg);
		lg_grammar_vocab_free(gv);
		lg_vocab_free(v);
		lg_grammar_free(g);
		return 1;
	}
	n_vocab = lg_vocab_n_tokens(v);
	words = ((size_t) n_vocab + 63) / 64;
	mask = malloc(words * sizeof(uint64_t));
	if (o.text_file != NULL)
	{
		lg_buf		text;

		lg_buf_init(&text);
		if (!read_file(o.text_file, &text, &err))
		{
			rc = cli_fail(cmd, 1, "%s", err.msg);
			goto done;
		}
		n = tokenize(cmd, v, text.data, text.len, &ids);
		lg_buf_free(&text);
		if (n < 0)
		{
			rc = 1;
			goto done;
		}
	}
	else
	{
		/* a random walk through allowed tokens, recorded so the warm pass repeats it */
		uint64_t	rng = (uint64_t) o.seed * 0x9E3779B97F4A7C15ULL + 1;

		ids = malloc(sizeof(lg_token) * (size_t) o.walk_tokens);
		for (n = 0; n < o.walk_tokens; n++)
		{
			lg_token	t;

			lg_grammar_matcher_fill_mask(m, mask);
			t = pick_allowed(mask, gv, v, &rng);
			if (t == LG_TOKEN_NULL || lg_vocab_is_eog(v, t) || !lg_grammar_matcher_accept_token(m, t))
				break;
			ids[n] = t;
		}
		/* the walk filled the cache: measure on a fresh grammar so the first pass is cold */
		lg_grammar_matcher_free(m);
		lg_grammar_free(g);
		g = load_grammar(cmd, &o);
		m = g ? lg_grammar_matcher_new(g, gv, &err) : NULL;
		if (m == NULL)
		{
			rc = 1;
			goto done;
		}
	}
	for (int p = 0; p < 2; p++)
	{
		pass_times *pt = &pass[p];

		pt->all = malloc(sizeof(double) * (size_t) (n + 1));
		pt->wide = malloc(sizeof(double) * (size_t) (n + 1));
		pt->narrow = malloc(sizeof(double) * (size_t) (n + 1));
		lg_grammar_matcher_reset(m);
		for (int64_t k = 0; k <= n; k++)
		{
			double		t0 = now_us(),
						dt;
			size_t		allowed = 0;

			lg_grammar_matcher_fill_mask(m, mask);
			dt = now_us() - t0;
			for (size_t w = 0; w < words; w++)
				allowed += (size_t) __builtin_popcountll(mask[w]);
			pt->all[pt->n++] = dt;
			if (allowed * 2 > (size_t) n_vocab)
				pt->wide[pt->n_wide++] = dt;
			else
				pt->narrow[pt->n_narrow++] = dt;
			if (k == n)
				break;
			if (!((mask[ids[k] >> 6] >> (ids[k] & 63)) & 1) || !lg_grammar_matcher_accept_token(m, ids[k]))
			{
				rc = cli_fail(cmd, 1, "the grammar rejects token %lld (id %d) of the text", (long long) k, ids[k]);
				goto done;
			}
		}
	}
	lg_grammar_matcher_cache_stats(m, &st);
	if (o.json)
	{
		printf("{\"vocab\": %d, \"vocab_build_ms\": %.1f, \"tokens\": %lld,\n", n_vocab, t_vocab / 1e3, (long long) n);
		print_pass("cold", &pass[0], true, false);
		print_pass("warm", &pass[1], true, false);
		printf("\"cache\": {\"entries\": %llu, \"bytes\": %llu, \"hits\": %llu, \"misses\": %llu, "
			   "\"uncertain_checks\": %llu, \"slow_fills\": %llu}}\n",
			   (unsigned long long) st.entries, (unsigned long long) st.bytes, (unsigned long long) st.hits,
			   (unsigned long long) st.misses, (unsigned long long) st.uncertain_checks,
			   (unsigned long long) st.slow_fills);
	}
	else
	{
		printf("vocabulary: %d tokens (grammar vocabulary built in %.1f ms); text: %lld tokens\n",
			   n_vocab, t_vocab / 1e3, (long long) n);
		print_pass("cold", &pass[0], false, false);
		print_pass("warm", &pass[1], false, true);
		printf("cache: %llu entries, %.1f KiB, %llu hits, %llu misses, %llu uncertain checks, %llu slow fills\n",
			   (unsigned long long) st.entries, (double) st.bytes / 1024, (unsigned long long) st.hits,
			   (unsigned long long) st.misses, (unsigned long long) st.uncertain_checks,
			   (unsigned long long) st.slow_fills);
	}
	rc = 0;
done:
	for (int p = 0; p < 2; p++)
		free(pass[p].all), free(pass[p].wide), free(pass[p].narrow);
	free(ids);
	free(mask);
	lg_grammar_matcher_free(m);
	lg_grammar_vocab_free(gv);
	lg_vocab_free(v);
	lg_grammar_free(g);
	return rc;
}

int
cmd_grammar(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return grammar_check(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "bench") == 0)
		return grammar_bench(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--help") == 0)
	{
		printf("usage: llamagpu grammar check|bench --gbnf FILE ... (llamagpu grammar check --help)\n");
		return 0;
	}
	return cli_fail("grammar", 2, "expecting a subcommand: check or bench");
}
