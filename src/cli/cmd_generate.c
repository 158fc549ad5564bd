/*
 * cmd_generate.c — `llamagpu generate`: continue a prompt.
 *
 * BOS is added as the model's metadata says and special-token text in the
 * prompt is parsed, as llama.cpp does.  The continuation streams to stdout;
 * with --json one object is printed at the end instead.
 *
 * Structured output: --grammar-file (GBNF) or --json-schema constrain the
 * text; --chat renders the prompt (or --messages) with the model's chat
 * template (or --chat-template), and with --tools the answer is a tool call
 * in the model's format or text (--tool-choice), returned as an OpenAI
 * message in --json's "message".
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "chat_template.h"
#include "cli.h"
#include "cli_args.h"
#include "generate.h"
#include "grammar.h"
#include "json.h"
#include "json_schema.h"

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

/* The constraint and chat options of generate. */
typedef struct gen_structured
{
	const char *grammar_file;	/* --grammar-file */
	const char *schema_file;	/* --json-schema */
	bool		compact;		/* --json-compact */
	bool		strict;			/* --json-strict */
	bool		chat;			/* --chat (implied by --messages) */
	const char *messages;		/* --messages JSON */
	const char *tools;			/* --tools JSON */
	const char *tool_choice;	/* --tool-choice */
	const char *template_file;	/* --chat-template */
	bool		print_grammar;	/* --print-grammar: show the compiled grammar, generate nothing */
	lg_chat_format format;		/* of the template, once rendered */
	lg_buf		gbnf;			/* the grammar's text, once compiled */
	double		compile_us;		/* schema or tools to GBNF */
	double		parse_us;		/* GBNF to a grammar */
} gen_structured;

/* Microseconds on the monotonic clock. */
static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* A whole file into b (NUL-terminated); false after printing why. */
static bool
read_file(const char *path, lg_buf *b)
{
	FILE	   *f = fopen(path, "rb");
	char		chunk[65536];
	size_t		n;
	bool		ok = true;

	if (f == NULL)
		return cli_fail("generate", 1, "cannot open %s", path), false;
	while (ok && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ok = lg_buf_append(b, chunk, n);
	ok = ok && !ferror(f) && lg_buf_append(b, "", 0);
	fclose(f);
	if (!ok)
		cli_fail("generate", 1, "cannot read %s", path);
	return ok;
}

/*
 * Render the chat: --messages, or the prompt as one user message, through
 * --chat-template or the model's template, into text.  False after printing why.
 */
static bool
render_chat(gen_structured *gs, const lg_model *m, const char *prompt, lg_buf *text)
{
	lg_buf		src;
	lg_buf		msgs;
	const char *tsrc;
	lg_chat_template *t;
	lg_chat_render_params rp;
	lg_error	err;
	char		bos[256];
	char		eos[256];
	size_t		len;
	const char *s;
	bool		ok = false;

	lg_buf_init(&src);
	lg_buf_init(&msgs);
	lg_error_clear(&err);
	if (gs->template_file != NULL)
	{
		if (!read_file(gs->template_file, &src))
			return false;
		tsrc = src.data;
	}
	else if ((tsrc = m->chat_template) == NULL)
		return cli_fail("generate", 1, "the model has no chat template (give --chat-template FILE)"), false;
	gs->format = lg_chat_detect_format(tsrc, strlen(tsrc));
	if (gs->messages == NULL)
	{
		if (!lg_buf_append(&msgs, "[{\"role\":\"user\",\"content\":", 26) ||
			!lg_buf_append_json_str(&msgs, prompt, strlen(prompt)) || !lg_buf_append(&msgs, "}]", 2))
			goto done;
	}
	else if (!lg_buf_append(&msgs, gs->messages, strlen(gs->messages)))
		goto done;
	t = lg_chat_template_parse(tsrc, strlen(tsrc), &err);
	if (t == NULL)
	{
		cli_fail("generate", 1, "cannot parse the chat template: %s", err.msg);
		goto done;
	}
	memset(&rp, 0, sizeof(rp));
	rp.messages_json = msgs.data;
	rp.messages_len = msgs.len;
	rp.tools_json = gs->tools;
	rp.tools_len = gs->tools ? strlen(gs->tools) : 0;
	rp.add_generation_prompt = true;
	s = lg_vocab_bos(m->vocab) != LG_TOKEN_NULL ? lg_vocab_token_text(m->vocab, lg_vocab_bos(m->vocab), &len) : NULL;
	snprintf(bos, sizeof(bos), "%.*s", s ? (int) len : 0, s ? s : "");
	s = lg_vocab_eos(m->vocab) != LG_TOKEN_NULL ? lg_vocab_token_text(m->vocab, lg_vocab_eos(m->vocab), &len) : NULL;
	snprintf(eos, sizeof(eos), "%.*s", s ? (int) len : 0, s ? s : "");
	rp.bos_token = bos;
	rp.eos_token = eos;
	if (lg_chat_template_render(t, &rp, text, &err) != LG_OK)
		cli_fail("generate", 1, "cannot render the chat template: %s", err.msg);
	else if (gs->tools && gs->format == LG_CHAT_GENERIC &&
			 !lg_chat_prompt_shows_tools(text->data, text->len, gs->tools, strlen(gs->tools)))
	{
		/* the template ignores the tools: describe them in the first message (as the server does) */
		lg_buf		with;

		lg_buf_init(&with);
		text->len = 0;
		if (lg_chat_messages_with_tools(msgs.data, msgs.len, gs->tools, strlen(gs->tools), &with, &err) != LG_OK)
			cli_fail("generate", 1, "%s", err.msg);
		else
		{
			rp.messages_json = with.data;
			rp.messages_len = with.len;
			if (lg_chat_template_render(t, &rp, text, &err) != LG_OK)
				cli_fail("generate", 1, "cannot render the chat template: %s", err.msg);
			else
				ok = lg_buf_append(text, "", 0);
		}
		lg_buf_free(&with);
	}
	else
		ok = lg_buf_append(text, "", 0);
	lg_chat_template_free(t);
done:
	lg_buf_free(&src);
	lg_buf_free(&msgs);
	return ok;
}

/*
 * The grammar of the options: --grammar-file, --json-schema, or a chat's
 * tools; NULL with *failed false when there is none, or after printing why
 * (*failed true).
 */
static lg_grammar *
load_constraint(gen_structured *gs, bool *failed)
{
	lg_buf		src;
	lg_buf	   *gbnf = &gs->gbnf;
	lg_error	err;
	double		t0;
	lg_grammar *g = NULL;
	bool		constrained = true;
	lg_status	st;
	const char *what = gs->grammar_file ? "grammar" : gs->schema_file ? "JSON schema" : "tools";

	*failed = false;
	if (gs->grammar_file == NULL && gs->schema_file == NULL && gs->tools == NULL)
		return NULL;
	*failed = true;
	lg_buf_init(&src);
	lg_error_clear(&err);
	if (gs->grammar_file)
	{
		if (!read_file(gs->grammar_file, gbnf))
			goto done;
	}
	else if (gs->schema_file)
	{
		lg_json_schema_opts o = {.compact = gs->compact, .strict_additional = gs->strict};

		if (!read_file(gs->schema_file, &src))
			goto done;
		t0 = now_us();
		st = lg_json_schema_to_gbnf(src.data, src.len, &o, gbnf, &err);
		gs->compile_us = now_us() - t0;
		if (st != LG_OK)
		{
			cli_fail("generate", 1, "invalid %s: %s", what, err.msg);
			goto done;
		}
	}
	else
	{
		lg_chat_grammar_params cp = {
			.format = gs->format, .tools_json = gs->tools, .tools_len = strlen(gs->tools),
			.tool_choice = gs->tool_choice, .compact = gs->compact, .strict = gs->strict,
		};

		t0 = now_us();
		st = lg_chat_build_grammar(&cp, gbnf, &constrained, &err);
		gs->compile_us = now_us() - t0;
		if (st != LG_OK)
		{
			cli_fail("generate", 1, "invalid %s: %s", what, err.msg);
			goto done;
		}
		if (!constrained)
		{
			*failed = false;
			goto done;
		}
	}
	t0 = now_us();
	g = lg_grammar_parse(gbnf->data, gbnf->len, &err);
	gs->parse_us = now_us() - t0;
	if (g == NULL)
		cli_fail("generate", 1, "invalid %s: %s", what, err.msg);
	else
		*failed = false;
done:
	lg_buf_free(&src);
	return g;
}

/* --print-grammar: the compiled grammar (and with json its timings); no model is needed. */
static int
print_grammar(gen_structured *gs, bool json)
{
	lg_buf		src;
	lg_grammar *g;
	bool		failed = false;

	if (gs->template_file != NULL)
	{
		lg_buf_init(&src);
		if (!read_file(gs->template_file, &src))
			return 1;
		gs->format = lg_chat_detect_format(src.data, src.len);
		lg_buf_free(&src);
	}
	g = load_constraint(gs, &failed);
	if (failed)
	{
		lg_buf_free(&gs->gbnf);
		return 1;
	}
	if (json)
	{
		lg_buf		b;

		lg_buf_init(&b);
		lg_buf_append(&b, "{\"gbnf\":", 8);
		lg_buf_append_json_str(&b, gs->gbnf.data ? gs->gbnf.data : "", gs->gbnf.len);
		lg_buf_appendf(&b, ",\"chat_format\":\"%s\",\"compile_us\":%.1f,\"parse_us\":%.1f}\n",
					   lg_chat_format_name(gs->format), gs->compile_us, gs->parse_us);
		fwrite(b.data, 1, b.len, stdout);
		lg_buf_free(&b);
	}
	else if (gs->gbnf.data)
		fwrite(gs->gbnf.data, 1, gs->gbnf.len, stdout);
	lg_grammar_free(g);
	lg_buf_free(&gs->gbnf);
	return 0;
}

/* One structured-output option; 1 consumed, 0 not one, -1 error. */
static int
structured_opt(gen_structured *gs, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char **dst = NULL;

	if (strcmp(a, "--json-compact") == 0)
		return gs->compact = true, 1;
	if (strcmp(a, "--json-strict") == 0)
		return gs->strict = true, 1;
	if (strcmp(a, "--chat") == 0)
		return gs->chat = true, 1;
	if (strcmp(a, "--print-grammar") == 0)
		return gs->print_grammar = true, 1;
	if (strcmp(a, "--grammar-file") == 0)
		dst = &gs->grammar_file;
	else if (strcmp(a, "--json-schema") == 0)
		dst = &gs->schema_file;
	else if (strcmp(a, "--messages") == 0)
		dst = &gs->messages;
	else if (strcmp(a, "--tools") == 0)
		dst = &gs->tools;
	else if (strcmp(a, "--tool-choice") == 0)
		dst = &gs->tool_choice;
	else if (strcmp(a, "--chat-template") == 0)
		dst = &gs->template_file;
	else
		return 0;
	if ((*dst = cli_value("generate", argc, argv, i)) == NULL)
		return -1;
	return 1;
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
	gen_structured gs = {0};
	lg_buf		chat_text;
	lg_grammar *grammar = NULL;
	lg_grammar_vocab *gvocab = NULL;
	lg_grammar_matcher *matcher = NULL;
	bool		failed = false;
	bool		add_bos = true;

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
		if (r == 0)
			r = structured_opt(&gs, argc, argv, &i);
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
				   "         [--kv f16|f32] [--device cpu|auto|cuda:N] [-t THREADS] [-c CTX] [--json]\n"
				   "         [--grammar-file FILE | --json-schema FILE [--json-compact] [--json-strict]]\n"
				   "         [--chat [--messages JSON] [--chat-template FILE] [--tools JSON]\n"
				   "          [--tool-choice auto|none|required|NAME]]\n"
				   "  --print-grammar prints the GBNF a --json-schema or --tools (with --chat-template)\n"
				   "  compiles to (with --json: and the compile and parse times) and generates nothing\n"
				   "  --temp 0 is greedy; defaults: -n 128 --temp 0.8 --top-k 40 --top-p 0.95 --min-p 0.05\n");
			return 0;
		}
		else
			return cli_fail("generate", 2, "unknown option \"%s\"", argv[i]);
	}
	if (gs.messages != NULL)
		gs.chat = true;
	if (!gs.chat && (gs.tools || gs.tool_choice || gs.template_file))
		return cli_fail("generate", 2, "--tools, --tool-choice and --chat-template need --chat");
	if (gs.grammar_file && gs.schema_file)
		return cli_fail("generate", 2, "give either --grammar-file or --json-schema, not both");
	if ((gs.grammar_file || gs.schema_file) && gs.tools)
		return cli_fail("generate", 2, "--grammar-file and --json-schema cannot be combined with --tools");
	if (gs.print_grammar)
		return print_grammar(&gs, json);
	if (prompt == NULL && gs.messages == NULL)
		return cli_fail("generate", 2, "no prompt given (use -p TEXT)");
	if (prompt != NULL && gs.messages != NULL)
		return cli_fail("generate", 2, "give either -p or --messages, not both");
	if (o.model == NULL)
		return cli_fail("generate", 2, "no model given (use -m FILE)");
	lg_error_clear(&err);
	if (lg_sampler_params_check(&sp, &err) != LG_OK)
		return cli_fail("generate", 2, "%s", err.msg);
	if (!cli_open_model("generate", &o, &m, &c))
		return 1;
	lg_buf_init(&chat_text);
	if (gs.chat)
	{
		if (!render_chat(&gs, m, prompt, &chat_text))
		{
			lg_context_free(c);
			lg_model_free(m);
			return 1;
		}
		prompt = chat_text.data;
	}
	grammar = load_constraint(&gs, &failed);
	if (grammar != NULL)
	{
		gvocab = lg_grammar_vocab_new(m->vocab, &err);
		matcher = gvocab ? lg_grammar_matcher_new(grammar, gvocab, &err) : NULL;
		if (matcher == NULL)
		{
			cli_fail("generate", 1, "%s", err.msg);
			failed = true;
		}
		gp.grammar = matcher;
	}
	if (failed)
	{
		lg_grammar_matcher_free(matcher);
		lg_grammar_vocab_free(gvocab);
		lg_grammar_free(grammar);
		lg_buf_free(&chat_text);
		lg_context_free(c);
		lg_model_free(m);
		return 1;
	}

	/* a first guess at the token count; lg_tokenize says how many it really needs */
	cap = (int64_t) strlen(prompt) + 16;
	ids = malloc(sizeof(lg_token) * cap);
	if (gs.chat)
	{
		/* a template that writes BOS itself must not get a second one */
		size_t		blen = 0;
		const char *btext = lg_vocab_bos(m->vocab) != LG_TOKEN_NULL ?
			lg_vocab_token_text(m->vocab, lg_vocab_bos(m->vocab), &blen) : NULL;

		add_bos = !(btext && blen > 0 && strncmp(prompt, btext, blen) == 0);
	}
	n_ids = ids ? lg_tokenize(m->vocab, prompt, strlen(prompt), add_bos, true, ids, cap, &err) : -1;
	if (n_ids > cap)
	{
		lg_token   *more = realloc(ids, sizeof(lg_token) * n_ids);

		if (more != NULL)
		{
			ids = more;
			cap = n_ids;
			n_ids = lg_tokenize(m->vocab, prompt, strlen(prompt), add_bos, true, ids, cap, &err);
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
		lg_buf		msg;
		int			n_calls = 0;

		lg_buf_init(&msg);
		/* calls are read only where the grammar checked them */
		if (gs.chat && (gs.tools == NULL || (gs.tool_choice && strcmp(gs.tool_choice, "none") == 0)))
		{
			if (lg_chat_content_message(res.text, res.text_len, &msg, &err) != LG_OK)
				rc = cli_fail("generate", 1, "%s", err.msg);
		}
		else if (gs.chat && lg_chat_parse_output(gs.format, res.text, res.text_len, &msg, &n_calls, &err) != LG_OK)
			rc = cli_fail("generate", 1, "%s", err.msg);
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
			if (gs.chat && msg.data)
			{
				lg_buf_append(&b, ",\"chat_format\":", 15);
				lg_buf_append_json_str(&b, lg_chat_format_name(gs.format), strlen(lg_chat_format_name(gs.format)));
				lg_buf_append(&b, ",\"message\":", 11);
				lg_buf_append(&b, msg.data, msg.len);
			}
			lg_buf_appendf(&b, ",\"finish_reason\":\"%s\",\"prompt_ms\":%.3f,\"gen_ms\":%.3f}\n",
						   n_calls > 0 ? "tool_calls" : lg_finish_reason_name(res.finish),
						   res.t_prompt_ms, res.t_gen_ms);
			fwrite(b.data, 1, b.len, stdout);
			lg_buf_free(&b);
		}
		else
			putchar('\n');
		lg_buf_free(&msg);
		lg_generate_result_free(&res);
	}
	lg_grammar_matcher_free(matcher);
	lg_grammar_vocab_free(gvocab);
	lg_grammar_free(grammar);
	lg_buf_free(&gs.gbnf);
	lg_buf_free(&chat_text);
	lg_sampler_free(s);
	free(ids);
	lg_context_free(c);
	lg_model_free(m);
	return rc;
}
