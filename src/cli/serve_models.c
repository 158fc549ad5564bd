/*
 * serve_models.c — the engine server's table of loaded models.  A model is
 * loaded once, on the first request that names it, and shared by every
 * request.  Each loaded model has a scheduler (continuous batching over one
 * KV block pool, scheduler.h) and one thread that steps it; that thread
 * frees the model when it has been unloaded and its last request is done.
 */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_template.h"
#include "gguf.h"
#include "grammar.h"

static pthread_mutex_t models_lock = PTHREAD_MUTEX_INITIALIZER;
static serve_model *models;

/*
 * The scheduler thread: step while there is work, sleep when there is not.
 * When told to stop (the model is unlisted and unused) it frees the
 * scheduler and the model itself, so a request ending on this very thread
 * can drop the last reference.
 */
static void *
sched_main(void *arg)
{
	serve_model *m = arg;

	while (!atomic_load(&m->stop))
	{
		lg_error	err = {0};
		bool		busy = false;

		if (!lg_sched_wait(m->sched, 100))
			continue;
		if (lg_sched_step(m->sched, &busy, &err) != LG_OK)
			serve_log(SERVE_LOG_ERROR, "model \"%s\": scheduler step failed: %s", m->name, err.msg);
		if (busy && serve_opts.token_delay_ms > 0)
			usleep((useconds_t) serve_opts.token_delay_ms * 1000);	/* test hook: a slow model */
	}
	lg_sched_free(m->sched);
	serve_log(SERVE_LOG_INFO, "unloaded model \"%s\"", m->name);
	lg_grammar_vocab_free(m->grammar_vocab);
	lg_chat_template_free(m->chat_template);
	pthread_mutex_destroy(&m->lazy_lock);
	lg_model_free(m->model);
	free(m->path);
	free(m);
	return NULL;
}

/* Free a model no longer listed nor used: its scheduler thread does it. */
static void
model_free(serve_model *m)
{
	atomic_store(&m->stop, true);
}

/* Make m's scheduler and start its thread; false with err set. */
static bool
model_start(serve_model *m, lg_error *err)
{
	lg_sched_params sp;
	lg_sched_stats st;
	pthread_attr_t attr;
	pthread_t	th;
	int			rc;

	lg_sched_params_default(&sp);
	sp.max_batch_tokens = serve_opts.max_batch_tokens;
	sp.max_seqs = serve_opts.max_seqs;
	sp.max_queued = serve_opts.max_queued;
	sp.n_ctx = serve_opts.ctx_size;
	sp.n_threads = serve_opts.threads;
	sp.device = serve_opts.device;
	sp.kv.block_size = serve_opts.kv_block_size;
	sp.kv.prefix_cache = serve_opts.prefix_cache;
	sp.kv.max_bytes = (int64_t) serve_opts.kv_cache_mb * 1024 * 1024;
	m->sched = lg_sched_new(m->model, &sp, err);
	if (m->sched == NULL)
		return false;
	m->n_ctx = sp.n_ctx > 0 ? sp.n_ctx :
		(m->model->hp.n_ctx_train > 0 && m->model->hp.n_ctx_train < 4096 ? m->model->hp.n_ctx_train : 4096);
	lg_sched_stats_get(m->sched, &st);
	serve_log(SERVE_LOG_INFO, "model \"%s\" on %s: %d KV blocks of %d positions (%.1f MB), %d positions per sequence",
			  m->name, lg_sched_device(m->sched), (int) st.kv.n_blocks, (int) st.kv.block_size,
			  (double) lg_kv_block_bytes(m->model, st.kv.block_size, LG_KV_F16) * st.kv.n_blocks / (1024.0 * 1024.0),
			  (int) m->n_ctx);
	atomic_init(&m->stop, false);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, sched_main, m);
	pthread_attr_destroy(&attr);
	if (rc != 0)
	{
		lg_sched_free(m->sched);
		m->sched = NULL;
		lg_error_set(err, LG_ERR_NOMEM, "cannot start a scheduler thread");
		return false;
	}
	return true;
}

/* Take m out of the table (caller holds models_lock). */
static void
model_unlist(serve_model *m)
{
	serve_model **pp;

	for (pp = &models; *pp != NULL; pp = &(*pp)->next)
	{
		if (*pp == m)
		{
			*pp = m->next;
			break;
		}
	}
	m->listed = false;
	m->next = NULL;
}

/*
 * The model called name, loading it from path when it is not loaded (or was
 * loaded from another path, i.e. re-registered).  Loading holds the table
 * lock: requests for other models wait, which is simple and rare.
 */
serve_model *
serve_model_acquire(const char *name, const char *path, lg_error *err)
{
	serve_model *m;
	lg_model   *lm;

	if (name == NULL || path == NULL || strlen(name) >= sizeof(m->name))
	{
		lg_error_set(err, LG_ERR_ARG, "request names no valid model");
		return NULL;
	}
	pthread_mutex_lock(&models_lock);
	for (m = models; m != NULL; m = m->next)
	{
		if (strcmp(m->name, name) != 0)
			continue;
		if (strcmp(m->path, path) == 0)
		{
			m->refs++;
			pthread_mutex_unlock(&models_lock);
			return m;
		}
		/* re-registered under another path: retire the old one */
		model_unlist(m);
		if (m->refs == 0)
			model_free(m);
		break;
	}

	serve_log(SERVE_LOG_INFO, "loading model \"%s\" from %s", name, path);
	lm = lg_model_load(path, err);
	if (lm == NULL)
	{
		pthread_mutex_unlock(&models_lock);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->path = strdup(path)) == NULL)
	{
		free(m);
		lg_model_free(lm);
		pthread_mutex_unlock(&models_lock);
		lg_error_set(err, LG_ERR_NOMEM, "out of memory loading model \"%s\"", name);
		return NULL;
	}
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->model = lm;
	pthread_mutex_init(&m->lazy_lock, NULL);
	if (!model_start(m, err))
	{
		pthread_mutex_destroy(&m->lazy_lock);
		free(m->path);
		free(m);
		lg_model_free(lm);
		pthread_mutex_unlock(&models_lock);
		return NULL;
	}
	m->refs = 1;
	m->listed = true;
	m->next = models;
	models = m;
	pthread_mutex_unlock(&models_lock);
	return m;
}

/* A request is done with m. */
void
serve_model_release(serve_model *m)
{
	bool		free_it;

	pthread_mutex_lock(&models_lock);
	m->refs--;
	free_it = (m->refs == 0 && !m->listed);
	pthread_mutex_unlock(&models_lock);
	if (free_it)
		model_free(m);
}

/* Unload name: cancel its generations; it is freed when the last request ends. */
bool
serve_model_unload(const char *name)
{
	serve_model *m;
	bool		found = false;

	pthread_mutex_lock(&models_lock);
	for (m = models; m != NULL; m = m->next)
	{
		if (strcmp(m->name, name) == 0)
		{
			found = true;
			serve_log(SERVE_LOG_INFO, "unloading model \"%s\" (%d requests using it are cancelled)", name, m->refs);
			model_unlist(m);
			if (m->refs == 0)
				model_free(m);
			else
				serve_requests_cancel_model(m);
			break;
		}
	}
	pthread_mutex_unlock(&models_lock);
	return found;
}

/*
 * m's grammar vocabulary: every token's bytes, built once (it walks the
 * whole vocabulary) by the first request with a grammar, then shared.
 */
const lg_grammar_vocab *
serve_model_grammar_vocab(serve_model *m, lg_error *err)
{
	lg_grammar_vocab *gv;

	pthread_mutex_lock(&m->lazy_lock);
	if (m->grammar_vocab == NULL)
		m->grammar_vocab = lg_grammar_vocab_new(m->model->vocab, err);
	gv = m->grammar_vocab;
	pthread_mutex_unlock(&m->lazy_lock);
	return gv;
}

/* m's own chat template (tokenizer.chat_template), parsed once by the first chat request. */
const lg_chat_template *
serve_model_chat_template(serve_model *m, lg_error *err)
{
	const char *src = m->model->chat_template;
	lg_chat_template *t;

	if (src == NULL || src[0] == '\0')
	{
		lg_error_set(err, LG_ERR_ARG, "model \"%s\" has no chat template (tokenizer.chat_template)", m->name);
		return NULL;
	}
	pthread_mutex_lock(&m->lazy_lock);
	if (m->chat_template == NULL)
		m->chat_template = lg_chat_template_parse(src, strlen(src), err);
	t = m->chat_template;
	pthread_mutex_unlock(&m->lazy_lock);
	return t;
}

/* One "model" field (name, path, requests) and one "sched" field (docs/protocol.md) per loaded model. */
void
serve_models_describe(serve_frame *f)
{
	pthread_mutex_lock(&models_lock);
	for (serve_model *m = models; m != NULL; m = m->next)
		serve_frame_fieldf(f, "model", "%s\t%s\t%d", m->name, m->path, m->refs);
	for (serve_model *m = models; m != NULL; m = m->next)
	{
		lg_sched_stats st;

		lg_sched_stats_get(m->sched, &st);
		serve_frame_fieldf(f, "sched",
						   "%s\t%d\t%d\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%d\t%d\t%d\t%d\t%d\t%lld\t%lld\t%lld\t%lld",
						   m->name, (int) st.n_queued, (int) st.n_running,
						   (long long) st.n_submitted, (long long) st.n_finished, (long long) st.n_rejected,
						   (long long) st.n_steps, (long long) st.n_batch_tokens,
						   (long long) st.n_prompt_tokens, (long long) st.n_gen_tokens,
						   (long long) st.n_preemptions, (int) st.max_batch_tokens,
						   (int) st.kv.block_size, (int) st.kv.n_blocks, (int) st.kv.n_used,
						   (int) st.kv.n_cached, (long long) st.kv.prefix_lookup_tokens,
						   (long long) st.kv.prefix_hit_tokens, (long long) st.n_embed_inputs,
						   (long long) st.n_embed_tokens);
		serve_metrics_describe_model(f, m->name, lg_sched_device(m->sched),
									 m->model->gguf ? (int64_t) (m->model->gguf->size - m->model->gguf->data_offset) : 0,
									 (int64_t) lg_kv_block_bytes(m->model, st.kv.block_size, LG_KV_F16) * st.kv.n_blocks);
	}
	pthread_mutex_unlock(&models_lock);
}
