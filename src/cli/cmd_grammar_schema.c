/*
 * cmd_grammar_schema.c — JSON Schema subcommands of `llamagpu grammar`.
 *
 *   llamagpu grammar gbnf --json-schema FILE [--compact] [--strict] [--prefix P]
 *       print the GBNF a schema compiles to
 *   llamagpu grammar schema-batch [-m VOCAB.gguf]
 *       JSON lines on stdin, one per schema, answered one line each on
 *       stdout: compile, then feed instances token by token checking each
 *       token is in the mask (the coverage harness
 *       scripts/jsonschemabench.py drives this, thousands of schemas per
 *       process).
 *
 * Request:  {"id": ..., "schema": {...}, "compact": false, "strict": false,
 *            "instances": ["text", ...], "modes": ["mask" | "bytes", ...]}
 * Reply:    {"id": ..., "status": "ok" | "unsupported" | "format" | ...,
 *            "error": "...", "compile_us": N, "parse_us": N, "gbnf_bytes": N,
 *            "results": [{"ok": true|false, "complete": bool, "at": byte}, ...]}
 * "ok" for an instance: every token was in the mask and accepted ("mask"
 * mode) or all bytes accepted ("bytes" mode), and the grammar is complete
 * at the end (EOS allowed).  "at" is the byte offset where it stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "gguf.h"
#include "grammar.h"
#include "json.h"
#include "json_schema.h"
#include "json_value.h"
#include "vocab.h"

/* Microseconds on the monotonic clock. */
static double
schema_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Read a whole stream into b. */
static bool
schema_read_all(FILE *f, lg_buf *b)
{
	char		chunk[65536];
	size_t		n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!lg_buf_append(b, chunk, n))
			return false;
	return !ferror(f) && lg_buf_append(b, "", 0);
}

/* Compile a schema file and print its GBNF. */
int
grammar_gbnf(int argc, char **argv)
{
	const char *file = NULL;
	lg_json_schema_opts o = {0};
	lg_buf		src, out;
	lg_error	err;
	FILE	   *f;
	int			rc = 0;

	for (int i = 2; i < argc; i++)
	{
		if (strcmp(argv[i], "--json-schema") == 0 && i + 1 < argc)
			file = argv[++i];
		else if (strcmp(argv[i], "--compact") == 0)
			o.compact = true;
		else if (strcmp(argv[i], "--strict") == 0)
			o.strict_additional = true;
		else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
			o.rule_prefix = argv[++i];
		else if (strcmp(argv[i], "--help") == 0)
		{
			printf("usage: llamagpu grammar gbnf --json-schema FILE [--compact] [--strict] [--prefix P]\n");
			return 0;
		}
		else
			return cli_fail("grammar gbnf", 2, "unknown option %s", argv[i]);
	}
	if (file == NULL)
		return cli_fail("grammar gbnf", 2, "--json-schema FILE is required");
	f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
	if (f == NULL)
		return cli_fail("grammar gbnf", 1, "cannot open %s", file);
	lg_buf_init(&src);
	lg_buf_init(&out);
	if (!schema_read_all(f, &src))
		rc = cli_fail("grammar gbnf", 1, "cannot read %s", file);
	if (f != stdin)
		fclose(f);
	if (rc == 0 && lg_json_schema_to_gbnf(src.data, src.len, &o, &out, &err) != LG_OK)
		rc = cli_fail("grammar gbnf", 1, "%s: %s", file, err.msg);
	if (rc == 0)
		fwrite(out.data, 1, out.len, stdout);
	lg_buf_free(&src);
	lg_buf_free(&out);
	return rc;
}

/* The tokens of text with no leading-space artefact (see tokenize in cmd_grammar.c); -1 on error. */
static int64_t
schema_tokenize(const lg_vocab *v, const char *text, size_t len, lg_token **out)
{
	char	   *pre = malloc(len + 2);
	lg_error	err;
	int64_t		n;
	size_t		end;
	char		piece[512];

	*out = NULL;
	if (pre == NULL)
		return -1;
	/* after a newline an SPM tokenizer adds no space before the text */
	pre[0] = '\n';
	memcpy(pre + 1, text, len);
	n = lg_tokenize(v, pre, len + 1, false, false, NULL, 0, &err);
	if (n < 0 || (*out = malloc(sizeof(lg_token) * (size_t) (n + 1))) == NULL ||
		lg_tokenize(v, pre, len + 1, false, false, *out, n, &err) != n)
	{
		free(pre);
		return -1;
	}
	free(pre);
	end = len;
	for (int64_t k = n; k-- > 0;)
	{
		int32_t		pl = lg_token_to_piece(v, (*out)[k], piece, sizeof(piece), false);

		if (pl < 0 || pl > (int32_t) sizeof(piece) || (size_t) pl > end ||
			memcmp(text + end - pl, piece, (size_t) pl) != 0)
			return -1;
		end -= (size_t) pl;
		if (end == 0)
		{
			memmove(*out, *out + k, sizeof(lg_token) * (size_t) (n - k));
			return n - k;
		}
	}
	return len == 0 ? 0 : -1;
}

/* Feed one instance; appends its result object to reply. */
static void
schema_run_instance(lg_grammar_matcher *m, const lg_vocab *v, uint64_t *mask, const char *text,
					size_t len, bool masks, lg_buf *reply)
{
	bool		ok = true;
	size_t		at = 0;

	lg_grammar_matcher_reset(m);
	if (masks && v)
	{
		lg_token   *ids;
		int64_t		n = schema_tokenize(v, text, len, &ids);
		char		piece[512];

		if (n < 0)
		{
			lg_buf_appendf(reply, "{\"ok\":false,\"complete\":false,\"at\":0,\"error\":\"tokenize\"}");
			free(ids);
			return;
		}
		for (int64_t i = 0; i < n && ok; i++)
		{
			lg_grammar_matcher_fill_mask(m, mask);
			if (!(mask[ids[i] / 64] >> (ids[i] % 64) & 1) || !lg_grammar_matcher_accept_token(m, ids[i]))
				ok = false;
			else
			{
				int32_t		pl = lg_token_to_piece(v, ids[i], piece, sizeof(piece), false);

				at += pl > 0 ? (size_t) pl : 0;
			}
		}
		if (ok)
		{
			lg_token	eos = lg_vocab_eos(v);

			lg_grammar_matcher_fill_mask(m, mask);
			ok = eos >= 0 && (mask[eos / 64] >> (eos % 64) & 1);
		}
		free(ids);
	}
	else
	{
		/* byte by byte, so "at" is the first byte refused */
		for (at = 0; at < len; at++)
			if (!lg_grammar_matcher_accept_bytes(m, text + at, 1))
				break;
		ok = at == len && lg_grammar_matcher_is_complete(m);
	}
	lg_buf_appendf(reply, "{\"ok\":%s,\"complete\":%s,\"at\":%zu}", ok ? "true" : "false",
				   lg_grammar_matcher_is_complete(m) ? "true" : "false", at);
}

/* One request line → one reply line. */
static void
schema_batch_line(const char *line, size_t len, const lg_vocab *v, const lg_grammar_vocab *gv,
				  uint64_t *mask, lg_buf *reply)
{
	lg_error	err;
	lg_json_node *req = lg_json_parse(line, len, &err);
	const lg_json_node *schema, *inst, *modes, *id, *cmp, *strict;
	lg_buf		stext, gbnf;
	lg_json_schema_opts o = {0};
	lg_status	st;
	double		t0, t1, t2;
	lg_grammar *g = NULL;
	lg_grammar_matcher *m = NULL;

	lg_buf_init(&stext);
	lg_buf_init(&gbnf);
	lg_buf_append(reply, "{", 1);
	if (req == NULL)
	{
		lg_buf_append(reply, "\"status\":\"request\",\"error\":", 27);
		lg_buf_append_json_str(reply, err.msg, strlen(err.msg));
		lg_buf_append(reply, "}\n", 2);
		return;
	}
	id = lg_json_get(req, "id");
	if (id)
	{
		lg_buf_append(reply, "\"id\":", 5);
		lg_json_write(reply, id, 0);
		lg_buf_append(reply, ",", 1);
	}
	schema = lg_json_get(req, "schema");
	inst = lg_json_get(req, "instances");
	modes = lg_json_get(req, "modes");
	cmp = lg_json_get(req, "compact");
	strict = lg_json_get(req, "strict");
	o.compact = cmp && cmp->kind == LG_JSON_BOOL && cmp->boolean;
	o.strict_additional = strict && strict->kind == LG_JSON_BOOL && strict->boolean;
	if (schema == NULL)
	{
		lg_buf_append(reply, "\"status\":\"request\",\"error\":\"no schema\"}\n", 40);
		lg_json_node_free(req);
		return;
	}
	if (schema->kind == LG_JSON_STRING)
		lg_buf_append(&stext, schema->str, schema->str_len);
	else
		lg_json_write(&stext, schema, 0);
	t0 = schema_now_us();
	st = lg_json_schema_to_gbnf(stext.data, stext.len, &o, &gbnf, &err);
	t1 = schema_now_us();
	if (st == LG_OK)
	{
		g = lg_grammar_parse(gbnf.data, gbnf.len, &err);
		st = g ? LG_OK : err.status;
		if (g == NULL)
		{
			/* the compiler wrote GBNF the parser refuses: a bug of ours */
			char		msg[LG_ERROR_MSG_LEN];

			snprintf(msg, sizeof(msg), "%s", err.msg);
			st = lg_error_set(&err, LG_ERR_INTERNAL, "generated GBNF does not parse: %.400s", msg);
		}
	}
	t2 = schema_now_us();
	if (g)
		m = lg_grammar_matcher_new(g, gv, &err);
	lg_buf_appendf(reply, "\"status\":\"%s\",\"compile_us\":%.0f,\"parse_us\":%.0f,\"gbnf_bytes\":%zu",
				   st == LG_OK ? "ok" : st == LG_ERR_UNSUPPORTED ? "unsupported" : st == LG_ERR_FORMAT ? "format" : lg_status_name(st),
				   t1 - t0, t2 - t1, gbnf.len);
	if (st != LG_OK)
	{
		lg_buf_append(reply, ",\"error\":", 9);
		lg_buf_append_json_str(reply, err.msg, strlen(err.msg));
	}
	if (m && inst && inst->kind == LG_JSON_ARRAY)
	{
		lg_buf_append(reply, ",\"results\":[", 12);
		for (size_t i = 0; i < inst->n; i++)
		{
			const lg_json_node *t = inst->items[i];
			const char *mode = modes ? lg_json_at(modes, i) && lg_json_at(modes, i)->kind == LG_JSON_STRING ? lg_json_at(modes, i)->str : "mask" : "mask";

			if (i)
				lg_buf_append(reply, ",", 1);
			if (t->kind != LG_JSON_STRING)
			{
				lg_buf_append(reply, "null", 4);
				continue;
			}
			schema_run_instance(m, v, mask, t->str, t->str_len, strcmp(mode, "mask") == 0, reply);
		}
		lg_buf_append(reply, "]", 1);
	}
	lg_buf_append(reply, "}\n", 2);
	lg_grammar_matcher_free(m);
	lg_grammar_free(g);
	lg_buf_free(&stext);
	lg_buf_free(&gbnf);
	lg_json_node_free(req);
}

/* The JSON-lines loop. */
int
grammar_schema_batch(int argc, char **argv)
{
	const char *model = NULL;
	lg_vocab   *v = NULL;
	lg_grammar_vocab *gv = NULL;
	uint64_t   *mask = NULL;
	lg_error	err;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;

	for (int i = 2; i < argc; i++)
	{
		if (strcmp(argv[i], "-m") == 0 && i + 1 < argc)
			model = argv[++i];
		else
			return cli_fail("grammar schema-batch", 2, "unknown option %s", argv[i]);
	}
	if (model)
	{
		lg_gguf    *gg = lg_gguf_open(model, &err);

		if (gg == NULL)
			return cli_fail("grammar schema-batch", 1, "%s: %s", model, err.msg);
		v = lg_vocab_load(gg, &err);
		lg_gguf_close(gg);
		if (v == NULL || (gv = lg_grammar_vocab_new(v, &err)) == NULL)
			return cli_fail("grammar schema-batch", 1, "%s: %s", model, err.msg);
		mask = calloc((size_t) (lg_vocab_n_tokens(v) + 63) / 64, sizeof(uint64_t));
		if (mask == NULL)
			return cli_fail("grammar schema-batch", 1, "out of memory");
	}
	while ((n = getline(&line, &cap, stdin)) > 0)
	{
		lg_buf		reply;

		if (n == 1 && line[0] == '\n')
			continue;
		lg_buf_init(&reply);
		schema_batch_line(line, (size_t) n, v, gv, mask, &reply);
		fwrite(reply.data, 1, reply.len, stdout);
		fflush(stdout);
		lg_buf_free(&reply);
	}
	free(line);
	free(mask);
	lg_grammar_vocab_free(gv);
	lg_vocab_free(v);
	return 0;
}
