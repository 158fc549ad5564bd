/*
 * cmd_generate.c — `llamagpu generate`: continue a prompt.
 *
 * BOS is added as the model's metadata says and special-token text in the
 * prompt is parsed, as llama.cpp does.  The continuation streams to stdout;
 * with --json one object is printed at the end instead.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "generate.h"
#include "json.h"

#define MAX_STOPS 16

/* Stream each piece to stdout as it is produced. */
static bool
print_piece(void *arg, const char *piece, size_t len)
{
	(void) arg;
	if (len > 0)
	{
		fwrite(piece, 1, len, stdout);
		fflush(stdout);
	}
	return true;
}

/* Append "[1,2,3]" to b. */
static void
append_ids(lg_buf *b, const lg_token *ids, int64_t n)
{
	lg_buf_append(b, "[", 1);
	for (int64_t i = 0; i < n; i++)
		lg_buf_appendf(b, i ? ",%d" : "%d", ids[i]);
	lg_buf_append(b, "]", 1);
}

/* Parse one sampler option; 1 consumed, 0 not a sampler option, -1 error. */
static int
sampler_opt(lg_sampler_params *sp, int argc, char **argv, int *i)
{
	static const struct
	{
		const char *flag;
		size_t		off;
		float		lo, hi;
	}			floats[] = {
		{"--temp", offsetof(lg_sampler_params, temperature), 0, 100},
		{"--top-p", offsetof(lg_sampler_params, top_p), 0, 1},
		{"--min-p", offsetof(lg_sampler_params, min_p), 0, 1},
		{"--typical-p", offsetof(lg_sampler_params, typical_p), 0, 1},
		{"--repeat-penalty", offsetof(lg_sampler_params, repeat_penalty), 0, 10},
		{"--presence-penalty", offsetof(lg_sampler_params, presence_penalty), -2, 2},
		{"--frequency-penalty", offsetof(lg_sampler_params, frequency_penalty), -2, 2},
	};
	const char *a = argv[*i];
	const char *val;
	int64_t		n;

	for (size_t k = 0; k < sizeof(floats) / sizeof(floats[0]); k++)
	{
		if (strcmp(a, floats[k].flag) != 0)
			continue;
		if ((val = cli_value("generate", argc, argv, i)) == NULL)
			return -1;
		if (!cli_parse_f32(val, floats[k].lo, floats[k].hi, (float *) ((char *) sp + floats[k].off)))
			return cli_fail("generate", 2, "invalid value \"%s\" for %s (%g to %g)", val, a,
							floats[k].lo, floats[k].hi), -1;
		return 1;
	}
	if (strcmp(a, "--top-k") == 0 || strcmp(a, "--repeat-last-n") == 0 || strcmp(a, "--seed") == 0)
	{
		if ((val = cli_value("generate", argc, argv, i)) == NULL)
			return -1;
		if (strcmp(a, "--seed") == 0)
		{
			if (!cli_parse_i64(val, 0, INT64_MAX, &n))
				return cli_fail("generate", 2, "invalid seed \"%s\" (a non-negative integer)", val), -1;
			sp->seed = (uint64_t) n;
			sp->has_seed = true;
		}
		else if (!cli_parse_i64(val, strcmp(a, "--top-k") == 0 ? 0 : -1, 1 << 30, &n))
			return cli_fail("generate", 2, "invalid value \"%s\" for %s", val, a), -1;
		else if (strcmp(a, "--top-k") == 0)
			sp->top_k = (int32_t) n;
		else
			sp->penalty_last_n = (int32_t) n;
		return 1;
	}
	return 0;
}

int
cmd_generate(int argc, char **argv)
{
	cli_model_opts o;
	lg_sampler_params sp;
	lg_generate_params gp = {.max_tokens = 128};
	const char *prompt = NULL;
	const char *stops[MAX_STOPS];
	bool		json = false;
	lg_model   *m;
	lg_context *c;
	lg_sampler *s;
	lg_token   *ids;
	int64_t		n_ids, cap;
	lg_generate_result res;
	lg_error	err;
	int			rc = 0;

	cli_model_opts_init(&o);
	lg_sampler_params_default(&sp);
	gp.stops = stops;
	for (int i = 1; i < argc; i++)
	{
		const char *val;
		int64_t		n;
		int			r = cli_model_opt("generate", &o, argc, argv, &i);

		if (r == 0)
			r = sampler_opt(&sp, argc, argv, &i);
		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--prompt") == 0)
		{
			if ((prompt = cli_value("generate", argc, argv, &i)) == NULL)
				return 2;
		}
		else if (strcmp(argv[i], "-n") == 0 || strcmp(argv[i], "--max-tokens") == 0)
		{
			if ((val = cli_value("generate", argc, argv, &i)) == NULL)
				return 2;
			if (!cli_parse_i64(val, 0, 1 << 24, &n))
				return cli_fail("generate", 2, "invalid token count \"%s\"", val);
			gp.max_tokens = (int32_t) n;
		}
		else if (strcmp(argv[i], "--stop") == 0)
		{
			if ((val = cli_value("generate", argc, argv, &i)) == NULL)
				return 2;
			if (gp.n_stops == MAX_STOPS || val[0] == '\0')
				return cli_fail("generate", 2, "stop strings must be non-empty, at most %d", MAX_STOPS);
			stops[gp.n_stops++] = val;
		}
		else if (strcmp(argv[i], "--help") == 0)
		{
			printf("usage: llamagpu generate -m FILE -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
				   "         [--min-p P] [--typical-p P] [--repeat-penalty R] [--repeat-last-n N]\n"
				   "         [--presence-penalty P] [--frequency-penalty F] [--seed S] [--stop TEXT]...\n"
				   "         [--kv f16|f32] [-t THREADS] [-c CTX] [--json]\n"
				   "  --temp 0 is greedy; defaults: -n 128 --temp 0.8 --top-k 40 --top-p 0.95 --min-p 0.05\n");
			return 0;
		}
		else
			return cli_fail("generate", 2, "unknown option \"%s\"", argv[i]);
	}
	if (prompt == NULL)
		return cli_fail("generate", 2, "no prompt given (use -p TEXT)");
	if (o.model == NULL)
		return cli_fail("generate", 2, "no model given (use -m FILE)");
	lg_error_clear(&err);
	if (lg_sampler_params_check(&sp, &err) != LG_OK)
		return cli_fail("generate", 2, "%s", err.msg);
	if (!cli_open_model("generate", &o, &m, &c))
		return 1;

	/* a first guess at the token count; lg_tokenize says how many it really needs */
	cap = (int64_t) strlen(prompt) + 16;
	ids = malloc(sizeof(lg_token) * cap);
	n_ids = ids ? lg_tokenize(m->vocab, prompt, strlen(prompt), true, true, ids, cap, &err) : -1;
	if (n_ids > cap)
	{
		lg_token   *more = realloc(ids, sizeof(lg_token) * n_ids);

		if (more != NULL)
		{
			ids = more;
			cap = n_ids;
			n_ids = lg_tokenize(m->vocab, prompt, strlen(prompt), true, true, ids, cap, &err);
		}
	}
	s = n_ids > 0 ? lg_sampler_new(&sp, m->hp.n_vocab, &err) : NULL;
	if (ids == NULL || n_ids < 0 || n_ids > cap)
		rc = cli_fail("generate", 1, "cannot tokenize the prompt: %s", ids ? err.msg : "out of memory");
	else if (n_ids == 0)
		rc = cli_fail("generate", 2, "the prompt is empty");
	else if (s == NULL)
		rc = cli_fail("generate", 1, "%s", err.msg);
	else if (lg_generate(c, s, ids, (int32_t) n_ids, &gp, json ? NULL : print_piece, NULL, &res, &err) != LG_OK)
		rc = cli_fail("generate", 1, "%s", err.msg);
	else
	{
		if (json)
		{
			lg_buf		b;

			lg_buf_init(&b);
			lg_buf_append(&b, "{\"prompt_ids\":", 14);
			append_ids(&b, ids, n_ids);
			lg_buf_append(&b, ",\"ids\":", 7);
			append_ids(&b, res.ids, res.n_ids);
			lg_buf_append(&b, ",\"text\":", 8);
			lg_buf_append_json_str(&b, res.text, res.text_len);
			lg_buf_appendf(&b, ",\"finish_reason\":\"%s\",\"prompt_ms\":%.3f,\"gen_ms\":%.3f}\n",
						   lg_finish_reason_name(res.finish), res.t_prompt_ms, res.t_gen_ms);
			fwrite(b.data, 1, b.len, stdout);
			lg_buf_free(&b);
		}
		else
			putchar('\n');
		lg_generate_result_free(&res);
	}
	lg_sampler_free(s);
	free(ids);
	lg_context_free(c);
	lg_model_free(m);
	return rc;
}
