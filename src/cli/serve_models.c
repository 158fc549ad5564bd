/*
 * serve_models.c — the engine server's table of loaded models and its KV
 * cache budget.  A model is loaded once, on the first request that names
 * it, and shared by every request; unloading waits for the requests that
 * use it.
 */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t models_lock = PTHREAD_MUTEX_INITIALIZER;
static serve_model *models;

static pthread_mutex_t kv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t kv_cond = PTHREAD_COND_INITIALIZER;
static size_t kv_used;

/* Free a model no longer listed nor used. */
static void
model_free(serve_model *m)
{
	serve_log(SERVE_LOG_INFO, "unloaded model \"%s\"", m->name);
	lg_model_free(m->model);
	free(m->path);
	free(m);
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

/* Unload name now, or when the requests using it end. */
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
			model_unlist(m);
			if (m->refs == 0)
				model_free(m);
			break;
		}
	}
	pthread_mutex_unlock(&models_lock);
	return found;
}

/* One "model" field per loaded model: name \t path \t requests. */
void
serve_models_describe(serve_frame *f)
{
	pthread_mutex_lock(&models_lock);
	for (serve_model *m = models; m != NULL; m = m->next)
		serve_frame_fieldf(f, "model", "%s\t%s\t%d", m->name, m->path, m->refs);
	pthread_mutex_unlock(&models_lock);
}

/*
 * Reserve bytes of the KV cache budget, waiting while running requests hold
 * it.  False when the request alone exceeds the budget or is cancelled.
 */
bool
serve_kv_reserve(size_t bytes, atomic_bool *cancel)
{
	size_t		budget = (size_t) serve_opts.kv_cache_mb * 1024 * 1024;

	if (budget == 0)
		return true;
	if (bytes > budget)
		return false;
	pthread_mutex_lock(&kv_lock);
	while (kv_used + bytes > budget && !atomic_load(cancel))
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000)
		{
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&kv_cond, &kv_lock, &ts);
	}
	if (atomic_load(cancel))
	{
		pthread_mutex_unlock(&kv_lock);
		return false;
	}
	kv_used += bytes;
	pthread_mutex_unlock(&kv_lock);
	return true;
}

/* Give back what serve_kv_reserve reserved, waking waiters. */
void
serve_kv_release(size_t bytes)
{
	if (serve_opts.kv_cache_mb == 0)
		return;
	pthread_mutex_lock(&kv_lock);
	kv_used -= bytes;
	pthread_cond_broadcast(&kv_cond);
	pthread_mutex_unlock(&kv_lock);
}
