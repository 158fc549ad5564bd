/*
 * cmd_eval.c — `llamagpu eval`: teacher forcing.  For every input position
 * i, print the top-K raw logits of the distribution of the token after i.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "json.h"

#define MAX_TOP 1000

/* Parse "1,2,3" into a malloc'd array. */
static bool
parse_ids(const char *s, lg_token **out, int32_t *n)
{
	int32_t		cap = 1;
	lg_token   *ids;

	for (const char *p = s; *p; p++)
		cap += *p == ',';
	ids = malloc(sizeof(lg_token) * cap);
	if (ids == NULL)
		return false;
	*n = 0;
	while (*s)
	{
		char	   *end;
		long long	v = strtoll(s, &end, 10);

		if (end == s || v < 0 || v > INT32_MAX || (*end != ',' && *end != '\0'))
		{
			free(ids);
			return false;
		}
		ids[(*n)++] = (lg_token) v;
		s = *end ? end + 1 : end;
		if (*end == ',' && *s == '\0')
		{
			free(ids);
			return false;
		}
	}
	*out = ids;
	return *n > 0;
}

/* Indices of the k largest values of row (ties: lower id first), highest first. */
static void
top_k(const float *row, int32_t n, int32_t k, int32_t *idx)
{
	int32_t		have = 0;

	for (int32_t i = 0; i < n; i++)
	{
		int32_t		j;

		if (have == k && !(row[i] > row[idx[k - 1]]))
			continue;
		j = have < k ? have++ : k - 1;
		while (j > 0 && row[i] > row[idx[j - 1]])
		{
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = i;
	}
}

int
cmd_eval(int argc, char **argv)
{
	cli_model_opts o;
	const char *ids_arg = NULL;
	int64_t		k = 5;
	lg_model   *m;
	lg_context *c;
	lg_token   *ids = NULL;
	int32_t		n = 0;
	float	   *logits;
	int32_t    *idx;
	lg_error	err;
	int			rc = 0;

	cli_model_opts_init(&o);
	for (int i = 1; i < argc; i++)
	{
		const char *val;
		int			r = cli_model_opt("eval", &o, argc, argv, &i);

		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--json") == 0)
			continue;			/* JSON is the only output format */
		else if (strcmp(argv[i], "--ids") == 0)
		{
			if ((ids_arg = cli_value("eval", argc, argv, &i)) == NULL)
				return 2;
		}
		else if (strcmp(argv[i], "--top") == 0)
		{
			if ((val = cli_value("eval", argc, argv, &i)) == NULL)
				return 2;
			if (!cli_parse_i64(val, 1, MAX_TOP, &k))
				return cli_fail("eval", 2, "invalid --top \"%s\" (1 to %d)", val, MAX_TOP);
		}
		else if (strcmp(argv[i], "--help") == 0)
		{
			printf("usage: llamagpu eval -m FILE --ids 1,2,3 [--top K] [--kv f16|f32] [--device cpu|auto|cuda:N] --json\n"
				   "  prints, for each input position, the top-K {\"id\", \"logit\"} of the next token\n");
			return 0;
		}
		else
			return cli_fail("eval", 2, "unknown option \"%s\"", argv[i]);
	}
	if (ids_arg == NULL)
		return cli_fail("eval", 2, "no token ids given (use --ids 1,2,3)");
	if (!parse_ids(ids_arg, &ids, &n))
		return cli_fail("eval", 2, "invalid --ids \"%s\" (comma-separated non-negative integers)", ids_arg);
	if (o.model == NULL)
	{
		free(ids);
		return cli_fail("eval", 2, "no model given (use -m FILE)");
	}
	if (o.n_ctx == 0)
		o.n_ctx = n;
	if (!cli_open_model("eval", &o, &m, &c))
	{
		free(ids);
		return 1;
	}
	if (k > m->hp.n_vocab)
		k = m->hp.n_vocab;
	logits = malloc(sizeof(float) * (size_t) n * m->hp.n_vocab);
	idx = malloc(sizeof(int32_t) * k);
	lg_error_clear(&err);
	if (logits == NULL || idx == NULL)
		rc = cli_fail("eval", 1, "out of memory for %d positions of logits", n);
	else if (lg_context_eval(c, ids, n, logits, true, &err) != LG_OK)
		rc = cli_fail("eval", 1, "%s", err.msg);
	else
	{
		lg_buf		b;

		lg_buf_init(&b);
		lg_buf_append(&b, "[", 1);
		for (int32_t i = 0; i < n; i++)
		{
			const float *row = logits + (size_t) i * m->hp.n_vocab;

			top_k(row, m->hp.n_vocab, (int32_t) k, idx);
			lg_buf_append(&b, i ? ",\n[" : "[", i ? 3 : 1);
			for (int32_t j = 0; j < k; j++)
				lg_buf_appendf(&b, "%s{\"id\":%d,\"logit\":%.9g}", j ? "," : "", idx[j], row[idx[j]]);
			lg_buf_append(&b, "]", 1);
		}
		lg_buf_append(&b, "]\n", 2);
		fwrite(b.data, 1, b.len, stdout);
		lg_buf_free(&b);
	}
	free(idx);
	free(logits);
	free(ids);
	lg_context_free(c);
	lg_model_free(m);
	return rc;
}
