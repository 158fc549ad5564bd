/*
 * serve_plugins.c — engine plugins in `llamagpu serve` (lg_plugin.h,
 * docs/plugins.md).
 *
 * The supervisor passes each enabled plugin as --plugin NAME:SHA256:PATH.
 * At start every one is opened through plugin_open, which re-checks the
 * file's SHA-256 against the registry's before any of its code runs; one
 * that fails is logged and left out (requests naming it get status plugin),
 * so a bad plugin file never keeps the engine from starting.
 *
 * A GENERATE that names a plugin (field logits_processor) gets its
 * request_begin on the worker thread, then its logits hook before every
 * sample on the scheduler thread (lg_sched_request.on_logits), then
 * request_end when the request ends however it ends.  A plugin that
 * crashes takes the engine with it; the supervisor counts such crashes and
 * restarts the engine without plugins after repeated ones.
 */
#include "serve.h"
#include "plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PLUGINS 32
#define PLUGIN_ERR_SIZE 256

typedef struct serve_plugin
{
	char		name[LG_PLUGIN_NAME_MAX + 1];	/* the registry's name */
	char		sha256[65];		/* the registry's checksum */
	char	   *path;
	bool		loaded;
	char		error[512];		/* why it is not loaded */
	plugin_lib	lib;
} serve_plugin;

static serve_plugin plugins[MAX_PLUGINS];
static int	n_plugins;

/* Remember one --plugin NAME:SHA256:PATH (serve.h). */
bool
serve_plugins_add(const char *spec, char *err, size_t err_size)
{
	plugin_spec ps;
	serve_plugin *p;

	if (!plugin_spec_parse(spec, &ps, err, err_size))
		return false;
	if (n_plugins == MAX_PLUGINS)
	{
		snprintf(err, err_size, "at most %d plugins", MAX_PLUGINS);
		return false;
	}
	p = &plugins[n_plugins];
	memset(p, 0, sizeof(*p));
	strcpy(p->name, ps.name);
	strcpy(p->sha256, ps.sha256);
	for (int i = 0; i < n_plugins; i++)
		if (strcmp(plugins[i].name, p->name) == 0)
		{
			snprintf(err, err_size, "--plugin: \"%s\" is given twice", p->name);
			return false;
		}
	p->path = strdup(ps.path);
	if (p->path == NULL)
	{
		snprintf(err, err_size, "out of memory");
		return false;
	}
	n_plugins++;
	return true;
}

/* Load every plugin given, leaving out (and logging) those that fail (serve.h). */
void
serve_plugins_load(void)
{
	for (int i = 0; i < n_plugins; i++)
	{
		serve_plugin *p = &plugins[i];

		if (plugin_open(p->path, p->sha256, &p->lib, p->error, sizeof(p->error)) != PLUGIN_OK)
		{
			serve_log(SERVE_LOG_ERROR, "engine plugin \"%s\" not loaded: %s", p->name, p->error);
			continue;
		}
		if (strcmp(p->lib.name, p->name) != 0)
		{
			snprintf(p->error, sizeof(p->error), "the library calls itself \"%s\"", p->lib.name);
			serve_log(SERVE_LOG_ERROR, "engine plugin \"%s\" not loaded: %s", p->name, p->error);
			continue;
		}
		p->loaded = true;
		serve_log(SERVE_LOG_INFO, "engine plugin \"%s\" %s loaded from %s (ABI %d)",
				  p->name, p->lib.api.version, p->path, LG_PLUGIN_ABI_VERSION);
	}
}

/* STATUS: one plugin field per plugin given (serve.h). */
void
serve_plugins_describe(serve_frame *f)
{
	for (int i = 0; i < n_plugins; i++)
		serve_frame_fieldf(f, "plugin", "%s\t%s\t%s\t%s", plugins[i].name,
						   plugins[i].loaded ? plugins[i].lib.api.version : "",
						   plugins[i].loaded ? "loaded" : "failed",
						   plugins[i].loaded ? "" : plugins[i].error);
}

/* lg_plugin_vocab.token_piece: the token's output text. */
static int32_t
vocab_token_piece(const lg_plugin_vocab *v, int32_t id, char *buf, int32_t bufsize)
{
	return lg_token_to_piece((const lg_vocab *) v->host, id, buf, bufsize, false);
}

/* lg_sched_request.on_logits: the request's plugin changes the logits. */
static bool
on_logits(void *arg, float *logits, int32_t n_vocab, const lg_token *tokens, int32_t n_tokens,
		  int32_t n_prompt, lg_error *err)
{
	serve_request *r = arg;
	const serve_plugin *p = r->plugin;
	char		msg[PLUGIN_ERR_SIZE] = "";

	if (p->lib.api.logits(r->plugin_state, logits, n_vocab, tokens, n_tokens, n_prompt,
						  msg, sizeof(msg)) == 0)
		return true;
	r->plugin_failed = true;
	msg[sizeof(msg) - 1] = '\0';
	lg_error_set(err, LG_ERR_ARG, "engine plugin \"%s\" failed: %s", p->name,
				 msg[0] ? msg : "its logits hook returned an error");
	return false;
}

/* Begin r's plugin request and hook it into sr (serve.h). */
bool
serve_plugin_begin(serve_request *r, serve_model *sm, lg_sched_request *sr)
{
	const char *name = serve_fields_get(&r->fields, "logits_processor");
	const char *options = serve_fields_get(&r->fields, "plugin_options");
	lg_plugin_vocab vocab;
	lg_plugin_request req;
	char		msg[PLUGIN_ERR_SIZE] = "";
	serve_plugin *p = NULL;

	if (name == NULL || name[0] == '\0')
	{
		if (options != NULL)
		{
			serve_send_error(r, LG_WIRE_ARG, "plugin_options needs logits_processor");
			return false;
		}
		return true;
	}
	for (int i = 0; i < n_plugins; i++)
		if (strcmp(plugins[i].name, name) == 0)
			p = &plugins[i];
	if (p == NULL || !p->loaded)
	{
		serve_send_error_detail(r, LG_WIRE_PLUGIN, p ? p->error : NULL,
								"Engine plugins are loaded when the engine starts; see llamagpu.llm_plugins.",
								"engine plugin \"%s\" is not loaded", name);
		return false;
	}
	vocab.n_vocab = sm->model->hp.n_vocab;
	vocab.eos = lg_vocab_eos(sm->model->vocab);
	vocab.token_piece = vocab_token_piece;
	vocab.host = sm->model->vocab;
	req.model = sm->name;
	req.vocab = &vocab;
	req.options = options ? options : "{}";
	req.options_len = strlen(req.options);
	r->plugin_state = NULL;
	if (p->lib.api.request_begin &&
		p->lib.api.request_begin(&req, &r->plugin_state, msg, sizeof(msg)) != 0)
	{
		msg[sizeof(msg) - 1] = '\0';
		serve_send_error(r, LG_WIRE_PLUGIN, "engine plugin \"%s\" refused the request: %s", name,
						 msg[0] ? msg : "request_begin returned an error");
		return false;
	}
	r->plugin = p;
	sr->on_logits = on_logits;
	return true;
}

/* End r's plugin request, once (serve.h). */
void
serve_plugin_end(serve_request *r)
{
	const serve_plugin *p = r->plugin;

	if (p == NULL)
		return;
	r->plugin = NULL;
	if (p->lib.api.request_end)
		p->lib.api.request_end(r->plugin_state);
	r->plugin_state = NULL;
}
