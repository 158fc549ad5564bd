/*
 * cmd_tokenize.c — `llamagpu tokenize` and `llamagpu detokenize`: JSON lines
 * in, JSON lines out, one per input line.
 *
 *   tokenize:   "text"   ->  [1, 2, 3]
 *   detokenize: [1, 2, 3] -> "text"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "json.h"

typedef struct tok_opts
{
	cli_model_opts model;
	bool		bos;
	bool		special;
	bool		jsonl;
} tok_opts;

/* Parse the options of both commands. */
static int
parse_opts(const char *cmd, int argc, char **argv, tok_opts *o)
{
	memset(o, 0, sizeof(*o));
	cli_model_opts_init(&o->model);
	for (int i = 1; i < argc; i++)
	{
		int			r = cli_model_opt(cmd, &o->model, argc, argv, &i);

		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--bos") == 0 && strcmp(cmd, "tokenize") == 0)
			o->bos = true;
		else if (strcmp(argv[i], "--special") == 0)
			o->special = true;
		else if (strcmp(argv[i], "--jsonl") == 0)
			o->jsonl = true;
		else if (strcmp(argv[i], "--help") == 0)
		{
			if (strcmp(cmd, "tokenize") == 0)
				printf("usage: llamagpu tokenize -m FILE [--bos] [--special] --jsonl\n"
					   "  reads one JSON string per line on stdin, prints one JSON array of ids per line\n"
					   "  --bos      add BOS (and EOS) as the model's metadata says\n"
					   "  --special  parse special-token text such as <|eot_id|>\n");
			else
				printf("usage: llamagpu detokenize -m FILE [--special] --jsonl\n"
					   "  reads one JSON array of ids per line on stdin, prints one JSON string per line\n"
					   "  --special  render control tokens (BOS, EOS, <|eot_id|>) as their text\n");
			exit(0);
		}
		else
			return cli_fail(cmd, 2, "unknown option \"%s\"", argv[i]);
	}
	if (!o->jsonl)
		return cli_fail(cmd, 2, "only --jsonl input is supported; pass --jsonl");
	if (o->model.model == NULL)
		return cli_fail(cmd, 2, "no model given (use -m FILE)");
	return 0;
}

/* Tokenize one decoded string into out (a JSON array). */
static bool
tokenize_line(const lg_vocab *v, const tok_opts *o, const lg_buf *text, lg_buf *out, lg_error *err)
{
	int64_t		cap = (int64_t) text->len + 16;
	lg_token   *ids = malloc(sizeof(lg_token) * cap);
	int64_t		n;

	if (ids == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory"), false;
	n = lg_tokenize(v, text->data ? text->data : "", text->len, o->bos, o->special, ids, cap, err);
	if (n > cap)
	{
		lg_token   *more = realloc(ids, sizeof(lg_token) * n);

		if (more == NULL)
		{
			free(ids);
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory"), false;
		}
		ids = more;
		n = lg_tokenize(v, text->data, text->len, o->bos, o->special, ids, n, err);
	}
	if (n < 0)
	{
		free(ids);
		return false;
	}
	lg_buf_append(out, "[", 1);
	for (int64_t i = 0; i < n; i++)
		lg_buf_appendf(out, i ? ", %d" : "%d", ids[i]);
	lg_buf_append(out, "]\n", 2);
	free(ids);
	return true;
}

/* Detokenize one line's JSON array of ids into out (a JSON string). */
static bool
detokenize_line(const lg_vocab *v, const tok_opts *o, const int64_t *vals, size_t n,
				lg_buf *out, lg_error *err)
{
	lg_token   *ids = malloc(sizeof(lg_token) * (n ? n : 1));
	int64_t		need;
	char	   *text;

	if (ids == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory"), false;
	for (size_t i = 0; i < n; i++)
	{
		if (vals[i] < 0 || vals[i] >= lg_vocab_n_tokens(v))
		{
			free(ids);
			return lg_error_set(err, LG_ERR_RANGE, "token id %lld is out of range (vocabulary has %d tokens)",
								(long long) vals[i], lg_vocab_n_tokens(v)), false;
		}
		ids[i] = (lg_token) vals[i];
	}
	need = lg_detokenize(v, ids, n, NULL, 0, false, o->special);
	text = need >= 0 ? malloc(need + 1) : NULL;
	if (text == NULL || lg_detokenize(v, ids, n, text, need + 1, false, o->special) < 0)
	{
		free(ids);
		free(text);
		return lg_error_set(err, LG_ERR_INTERNAL, "detokenization failed"), false;
	}
	lg_buf_append_json_str(out, text, need);
	lg_buf_append(out, "\n", 1);
	free(text);
	free(ids);
	return true;
}

/* The shared loop: read lines, convert each, print as we go. */
static int
run(const char *cmd, int argc, char **argv, bool detok)
{
	tok_opts	o;
	lg_gguf    *g;
	lg_vocab   *v;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	long		lineno = 0;
	int			rc;
	lg_buf		text, out;
	lg_error	err;

	if ((rc = parse_opts(cmd, argc, argv, &o)) != 0)
		return rc;
	/* only the vocabulary is needed, so vocabulary-only GGUF files work too */
	lg_error_clear(&err);
	if ((g = lg_gguf_open(o.model.model, &err)) == NULL)
		return cli_fail(cmd, 1, "%s: %s", o.model.model, err.msg);
	v = lg_vocab_load(g, &err);
	lg_gguf_close(g);
	if (v == NULL)
		return cli_fail(cmd, 1, "%s: %s", o.model.model, err.msg);
	lg_buf_init(&text);
	lg_buf_init(&out);
	rc = 0;
	while ((len = getline(&line, &cap, stdin)) >= 0)
	{
		size_t		pos = 0;
		bool		ok;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		out.len = 0;
		if (detok)
		{
			int64_t    *vals = NULL;
			size_t		n = 0;

			ok = lg_json_parse_int_array(line, len, &pos, &vals, &n, &err) == LG_OK;
			if (ok && !lg_json_at_end(line, len, &pos))
				ok = (lg_error_set(&err, LG_ERR_FORMAT, "unexpected text after the array"), false);
			ok = ok && detokenize_line(v, &o, vals, n, &out, &err);
			free(vals);
		}
		else
		{
			ok = lg_json_parse_string(line, len, &pos, &text, &err) == LG_OK;
			if (ok && !lg_json_at_end(line, len, &pos))
				ok = (lg_error_set(&err, LG_ERR_FORMAT, "unexpected text after the string"), false);
			ok = ok && tokenize_line(v, &o, &text, &out, &err);
		}
		if (!ok)
		{
			fflush(stdout);
			rc = cli_fail(cmd, 1, "line %ld: %s", lineno, err.msg);
			break;
		}
		fwrite(out.data, 1, out.len, stdout);
	}
	free(line);
	lg_buf_free(&text);
	lg_buf_free(&out);
	lg_vocab_free(v);
	return rc;
}

int
cmd_tokenize(int argc, char **argv)
{
	return run("tokenize", argc, argv, false);
}

int
cmd_detokenize(int argc, char **argv)
{
	return run("detokenize", argc, argv, true);
}
