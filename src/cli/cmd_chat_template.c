/*
 * cmd_chat_template.c — `llamagpu chat-template render`: a conversation
 * through a chat template, the text written to stdout exactly (no newline
 * added), so it can be compared byte for byte with transformers'
 * apply_chat_template (tests/chat/render_reference.py does).
 *
 * The template comes from --template FILE or from a model (-m, its
 * tokenizer.chat_template, and then its BOS/EOS token texts unless --bos or
 * --eos say otherwise).  --messages, --tools and --extra take JSON text, or
 * @FILE to read it from a file.  A template error (syntax, runtime,
 * raise_exception) exits 1 with "llamagpu chat-template: <status>: message".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "cli.h"
#include "cli_args.h"
#include "json.h"
#include "vocab.h"

#define CMD "chat-template"

/* Read a whole file into b; false with a message on failure. */
static bool
read_file(const char *path, lg_buf *b)
{
	FILE	   *f = fopen(path, "rb");
	char		chunk[65536];
	size_t		n;

	if (f == NULL)
	{
		cli_fail(CMD, 1, "cannot open \"%s\": %s", path, strerror(errno));
		return false;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!lg_buf_append(b, chunk, n))
		{
			fclose(f);
			cli_fail(CMD, 1, "out of memory reading \"%s\"", path);
			return false;
		}
	if (ferror(f))
	{
		fclose(f);
		cli_fail(CMD, 1, "cannot read \"%s\"", path);
		return false;
	}
	fclose(f);
	if (b->data == NULL)
		lg_buf_append(b, "", 0);
	return true;
}

/* An argument that is JSON text or @FILE. */
static bool
json_arg(const char *arg, lg_buf *b)
{
	if (arg[0] == '@')
		return read_file(arg + 1, b);
	if (!lg_buf_append(b, arg, strlen(arg)))
	{
		cli_fail(CMD, 1, "out of memory");
		return false;
	}
	return true;
}

/* A token's text, or "" when there is none. */
static char *
token_text(const lg_vocab *v, lg_token t)
{
	size_t		n = 0;
	const char *s = t == LG_TOKEN_NULL ? NULL : lg_vocab_token_text(v, t, &n);

	return strndup(s ? s : "", s ? n : 0);
}

/* Print usage. */
static void
usage(FILE *f)
{
	fprintf(f,
			"usage: llamagpu chat-template render (--template FILE | -m MODEL.gguf) --messages JSON|@FILE\n"
			"         [--tools JSON|@FILE] [--extra JSON|@FILE] [--no-generation-prompt]\n"
			"         [--bos TEXT] [--eos TEXT] [--now UNIX_SECONDS]\n"
			"Renders the conversation as transformers' apply_chat_template does and writes the\n"
			"text to stdout.  -m takes the model's tokenizer.chat_template and BOS/EOS texts.\n");
}

int
cmd_chat_template(int argc, char **argv)
{
	const char *template_path = NULL,
			   *model_path = NULL,
			   *messages = NULL,
			   *tools = NULL,
			   *extra = NULL,
			   *bos = NULL,
			   *eos = NULL;
	bool		gen_prompt = true;
	int64_t		now = 0;
	lg_buf		tpl,
				msgs,
				tls,
				ext,
				out;
	char	   *model_bos = NULL,
			   *model_eos = NULL;
	lg_chat_template *t = NULL;
	lg_chat_render_params p;
	lg_error	err;
	int			rc = 1;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
	{
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "render") != 0)
		return cli_fail(CMD, 2, "unknown action \"%s\" (only \"render\")", argv[1]);
	for (int i = 2; i < argc; i++)
	{
		const char *a = argv[i];
		const char **dst = NULL;

		if (!strcmp(a, "--template"))
			dst = &template_path;
		else if (!strcmp(a, "-m") || !strcmp(a, "--model"))
			dst = &model_path;
		else if (!strcmp(a, "--messages"))
			dst = &messages;
		else if (!strcmp(a, "--tools"))
			dst = &tools;
		else if (!strcmp(a, "--extra"))
			dst = &extra;
		else if (!strcmp(a, "--bos"))
			dst = &bos;
		else if (!strcmp(a, "--eos"))
			dst = &eos;
		else if (!strcmp(a, "--no-generation-prompt"))
		{
			gen_prompt = false;
			continue;
		}
		else if (!strcmp(a, "--now"))
		{
			const char *v = cli_value(CMD, argc, argv, &i);

			if (v == NULL)
				return 2;
			if (!cli_parse_i64(v, 1, INT64_MAX / 2, &now))
				return cli_fail(CMD, 2, "--now needs a positive number of seconds, not \"%s\"", v);
			continue;
		}
		else if (!strcmp(a, "--help"))
		{
			usage(stdout);
			return 0;
		}
		else
			return cli_fail(CMD, 2, "unknown option \"%s\"", a);
		if ((*dst = cli_value(CMD, argc, argv, &i)) == NULL)
			return 2;
	}
	if ((template_path == NULL) == (model_path == NULL))
		return cli_fail(CMD, 2, "give exactly one of --template FILE and -m MODEL");
	if (messages == NULL)
		return cli_fail(CMD, 2, "--messages is required");

	lg_buf_init(&tpl);
	lg_buf_init(&msgs);
	lg_buf_init(&tls);
	lg_buf_init(&ext);
	lg_buf_init(&out);
	if (template_path && !read_file(template_path, &tpl))
		goto done;
	if (model_path)
	{
		cli_model_opts o;
		lg_model   *m;

		cli_model_opts_init(&o);
		o.model = model_path;
		if (!cli_open_model(CMD, &o, &m, NULL))
			goto done;
		if (m->chat_template == NULL)
		{
			lg_model_free(m);
			cli_fail(CMD, 1, "model \"%s\" has no tokenizer.chat_template", model_path);
			goto done;
		}
		lg_buf_append(&tpl, m->chat_template, strlen(m->chat_template));
		model_bos = token_text(m->vocab, lg_vocab_bos(m->vocab));
		model_eos = token_text(m->vocab, lg_vocab_eos(m->vocab));
		lg_model_free(m);
	}
	if (!json_arg(messages, &msgs) || (tools && !json_arg(tools, &tls)) || (extra && !json_arg(extra, &ext)))
		goto done;

	lg_error_clear(&err);
	t = lg_chat_template_parse(tpl.data ? tpl.data : "", tpl.len, &err);
	if (t == NULL)
	{
		cli_fail(CMD, 1, "%s: %s", lg_status_name(err.status), err.msg);
		goto done;
	}
	memset(&p, 0, sizeof(p));
	p.messages_json = msgs.data;
	p.messages_len = msgs.len;
	p.tools_json = tools ? tls.data : NULL;
	p.tools_len = tls.len;
	p.extra_json = extra ? ext.data : NULL;
	p.extra_len = ext.len;
	p.add_generation_prompt = gen_prompt;
	p.bos_token = bos ? bos : model_bos ? model_bos : "";
	p.eos_token = eos ? eos : model_eos ? model_eos : "";
	p.now_unix = now;
	if (lg_chat_template_render(t, &p, &out, &err) != LG_OK)
	{
		cli_fail(CMD, 1, "%s: %s", lg_status_name(err.status), err.msg);
		goto done;
	}
	fwrite(out.data ? out.data : "", 1, out.len, stdout);
	rc = fflush(stdout) == 0 ? 0 : 1;
done:
	lg_chat_template_free(t);
	lg_buf_free(&tpl);
	lg_buf_free(&msgs);
	lg_buf_free(&tls);
	lg_buf_free(&ext);
	lg_buf_free(&out);
	free(model_bos);
	free(model_eos);
	return rc;
}
