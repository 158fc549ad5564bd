/*
 * stat_status.c — the engine's STATUS reply read into structs, for the
 * views and functions that report on the engine: llm_stat_engine,
 * llm_stat_models, llm_stat_reset and llm_metrics() (stat_*.c).  Lines an
 * older engine does not send leave their parts unset (has_* false); fields
 * a newer engine adds at the end of a line are ignored.
 */
#include "llamagpu.h"

#include <errno.h>
#include <math.h>

/* Split a TAB-separated line (modified in place) into at most max fields; the count. */
static int
split_tabs(char *line, char **f, int max)
{
	int			n = 0;

	while (n < max)
	{
		f[n++] = line;
		line = strchr(line, '\t');
		if (line == NULL)
			break;
		*line++ = '\0';
	}
	return n;
}

/* A whole field as a finite double into *out; false if it is not one. */
static bool
parse_double(const char *s, double *out)
{
	char	   *end;

	errno = 0;
	*out = strtod(s, &end);
	return end != s && *end == '\0' && errno == 0 && isfinite(*out);
}

/* A whole field as an int64 that is not negative into *out; false if it is not one. */
static bool
parse_count(const char *s, int64 *out)
{
	char	   *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return end != s && *end == '\0' && errno == 0 && *out >= 0;
}

/* The entry of model name, created (in the order first seen) if new. */
static StatModel *
model_entry(EngineStatus *st, const char *name)
{
	ListCell   *lc;
	StatModel  *m;

	foreach(lc, st->models)
	{
		m = lfirst(lc);
		if (strcmp(m->name, name) == 0)
			return m;
	}
	m = palloc0(sizeof(StatModel));
	m->name = pstrdup(name);
	st->models = lappend(st->models, m);
	return m;
}

/* "model": name TAB path TAB requests using it.  Listed means loaded. */
static void
add_model(const char *value, void *arg)
{
	char	   *f[3];
	int			n = split_tabs(pstrdup(value), f, 3);
	StatModel  *m = model_entry(arg, f[0]);

	m->loaded = true;
	if (n >= 2)
		m->path = pstrdup(f[1]);
	if (n >= 3)
		m->refs = strtoll(f[2], NULL, 10);
}

/* "sched": name and the scheduler's counters. */
static void
add_sched(const char *value, void *arg)
{
	char	   *f[STAT_SCHED_FIELDS + 1];
	int			n = split_tabs(pstrdup(value), f, STAT_SCHED_FIELDS + 1);
	StatModel  *m = model_entry(arg, f[0]);

	m->has_sched = true;
	/* missing counters read 0 */
	for (int i = 0; i < STAT_SCHED_FIELDS; i++)
		m->sched[i] = i + 1 < n ? strtoll(f[i + 1], NULL, 10) : 0;
}

/* "model_memory": name TAB device TAB weights bytes TAB KV pool bytes. */
static void
add_model_memory(const char *value, void *arg)
{
	char	   *f[4];
	int			n = split_tabs(pstrdup(value), f, 4);
	StatModel  *m = model_entry(arg, f[0]);

	if (n < 4)
		return;
	m->has_memory = true;
	m->device = pstrdup(f[1]);
	m->weights_bytes = strtoll(f[2], NULL, 10);
	m->kv_bytes = strtoll(f[3], NULL, 10);
}

/*
 * "metrics": name, requests, errors, prompt and generated tokens,
 * outcome:count list, then embedding requests, inputs and prompt tokens.
 */
static void
add_metrics(const char *value, void *arg)
{
	char	   *f[9];
	int			n = split_tabs(pstrdup(value), f, 9);
	StatModel  *m;

	if (n < 5)
		return;
	m = model_entry(arg, f[0]);
	m->has_metrics = true;
	m->requests = strtoll(f[1], NULL, 10);
	m->errors = strtoll(f[2], NULL, 10);
	m->prompt_tokens = strtoll(f[3], NULL, 10);
	m->gen_tokens = strtoll(f[4], NULL, 10);
	m->embed_requests = n >= 7 ? strtoll(f[6], NULL, 10) : 0;
	m->embed_inputs = n >= 8 ? strtoll(f[7], NULL, 10) : 0;
	m->embed_prompt_tokens = n >= 9 ? strtoll(f[8], NULL, 10) : 0;
	m->outcomes = NIL;
	if (n >= 6 && f[5][0] != '\0')
	{
		char	   *save;

		for (char *tok = strtok_r(f[5], ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		{
			char	   *colon = strrchr(tok, ':');
			StatOutcome *o;
			int64		count;

			/* "name:count", both there: anything else is left out */
			if (colon == NULL || colon == tok || !parse_count(colon + 1, &count))
				continue;
			*colon = '\0';
			o = palloc(sizeof(StatOutcome));
			o->name = pstrdup(tok);
			o->count = count;
			m->outcomes = lappend(m->outcomes, o);
		}
	}
}

/* Split "a,b,c" into at most max strings; the count, or max + 1 when there are more. */
static int
split_commas(char *s, char **out, int max)
{
	int			n = 0;
	char	   *save;

	for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		if (n == max)
			return max + 1;
		out[n++] = tok;
	}
	return n;
}

/* "histogram": name, kind, count, sum, bounds, cumulative counts (the last +Inf). */
static void
add_histogram(const char *value, void *arg)
{
	char	   *f[6];
	int			n = split_tabs(pstrdup(value), f, 6);
	char	   *bounds[STAT_MAX_BUCKETS];
	char	   *cum[STAT_MAX_BUCKETS + 1];
	int			nb;
	int			nc;
	int			kind;
	double	   *b;
	int64	   *c;
	StatHist   *h;

	if (n < 6)
		return;
	for (kind = 0; kind < STAT_HIST_COUNT; kind++)
		if (strcmp(f[1], StatHistNames[kind]) == 0)
			break;
	if (kind == STAT_HIST_COUNT)
		return;					/* a kind this extension does not know */
	nb = split_commas(f[4], bounds, STAT_MAX_BUCKETS);
	nc = split_commas(f[5], cum, STAT_MAX_BUCKETS + 1);
	if (nb > STAT_MAX_BUCKETS || nc != nb + 1)
		return;					/* malformed, or more buckets than we keep: leave it out */
	b = palloc(sizeof(double) * (nb + 1));
	c = palloc(sizeof(int64) * (nb + 1));
	/*
	 * Bounds finite and increasing, cumulative counts whole and not
	 * decreasing: the quantiles interpolate between them, and the bounds'
	 * text becomes Prometheus' le labels.  Anything else is left out.
	 */
	for (int i = 0; i < nb; i++)
		if (!parse_double(bounds[i], &b[i]) || (i > 0 && b[i] <= b[i - 1]))
			return;
	for (int i = 0; i <= nb; i++)
		if (!parse_count(cum[i], &c[i]) || (i > 0 && c[i] < c[i - 1]))
			return;
	h = &model_entry(arg, f[0])->hist[kind];
	h->present = true;
	h->count = strtoll(f[2], NULL, 10);
	h->sum = strtod(f[3], NULL);
	h->nbounds = nb;
	h->bounds = b;
	h->bound_text = palloc(sizeof(char *) * (nb + 1));
	h->cum = c;
	for (int i = 0; i < nb; i++)
		h->bound_text[i] = pstrdup(bounds[i]);
}

/*
 * Ask the engine for its STATUS (with reset: zero its request counters
 * first) and read it into st.  st->reachable is false, and the rest
 * empty, when the engine is not running: nothing waits for it to start.
 */
void
EngineStatusFetch(EngineStatus *st, bool reset)
{
	EngineConn *conn;
	EngineFrame res;
	StringInfoData req;
	const char *v;

	memset(st, 0, sizeof(*st));
	conn = EngineConnect(0, true);
	if (conn == NULL)
		return;
	initStringInfo(&req);
	if (reset)
		EngineField(&req, "reset", "1");
	EngineCall(conn, LG_FRAME_STATUS, &req, &res);
	EngineClose(conn);
	st->reachable = true;
	if ((v = EngineFrameGet(&res, "pid")) != NULL)
		st->pid = atoi(v);
	if ((v = EngineFrameGet(&res, "uptime_ms")) != NULL)
	{
		st->has_uptime = true;
		st->uptime_ms = strtoll(v, NULL, 10);
	}
	if ((v = EngineFrameGet(&res, "stats_reset_unix_us")) != NULL)
		st->stats_reset_unix_us = strtoll(v, NULL, 10);
	if ((v = EngineFrameGet(&res, "device_memory")) != NULL)
	{
		char	   *f[3];

		if (split_tabs(pstrdup(v), f, 3) == 3)
		{
			st->has_device_memory = true;
			st->device = pstrdup(f[0]);
			st->device_memory_used = strtoll(f[1], NULL, 10);
			st->device_memory_total = strtoll(f[2], NULL, 10);
		}
	}
	if ((v = EngineFrameGet(&res, "grammar_cache")) != NULL)
	{
		char	   *f[3];

		if (split_tabs(pstrdup(v), f, 3) == 3)
		{
			st->has_grammar_cache = true;
			st->grammar_cache_entries = strtoll(f[0], NULL, 10);
			st->grammar_cache_hits = strtoll(f[1], NULL, 10);
			st->grammar_cache_misses = strtoll(f[2], NULL, 10);
		}
	}
	EngineFrameForEach(&res, "model", add_model, st);
	EngineFrameForEach(&res, "sched", add_sched, st);
	EngineFrameForEach(&res, "model_memory", add_model_memory, st);
	EngineFrameForEach(&res, "metrics", add_metrics, st);
	EngineFrameForEach(&res, "histogram", add_histogram, st);
}

/*
 * The q-quantile of a histogram as Prometheus' histogram_quantile computes
 * it: the bucket holding rank q * count, interpolated linearly inside it
 * (the first bucket from 0); in the +Inf bucket, the largest finite bound.
 * NaN when the histogram is empty.
 */
double
StatHistQuantile(const StatHist *h, double q)
{
	double		rank;
	int			i;

	if (!h->present || h->count <= 0 || h->nbounds == 0)
		return NAN;
	rank = q * h->count;
	for (i = 0; i < h->nbounds; i++)
		if (h->cum[i] >= rank)
			break;
	if (i == h->nbounds)
		return h->bounds[h->nbounds - 1];
	{
		double		lower = i == 0 ? 0 : h->bounds[i - 1];
		double		below = i == 0 ? 0 : h->cum[i - 1];
		double		in_bucket = h->cum[i] - below;

		if (in_bucket <= 0)
			return h->bounds[i];
		return lower + (h->bounds[i] - lower) * (rank - below) / in_bucket;
	}
}

/* The engine-wide sums over loaded models' schedulers. */
void
EngineStatusTotals(const EngineStatus *st, int64 *queued, int64 *running, int64 *kv_used,
				   int64 *kv_total, int64 *prefix_lookup, int64 *prefix_hit)
{
	ListCell   *lc;

	*queued = *running = *kv_used = *kv_total = *prefix_lookup = *prefix_hit = 0;
	foreach(lc, st->models)
	{
		StatModel  *m = lfirst(lc);

		if (!m->has_sched)
			continue;
		*queued += m->sched[STAT_SCHED_QUEUED];
		*running += m->sched[STAT_SCHED_RUNNING];
		*kv_used += m->sched[STAT_SCHED_KV_USED];
		*kv_total += m->sched[STAT_SCHED_KV_TOTAL];
		*prefix_lookup += m->sched[STAT_SCHED_PREFIX_LOOKUP];
		*prefix_hit += m->sched[STAT_SCHED_PREFIX_HIT];
	}
}

const char *const StatHistNames[STAT_HIST_COUNT] = {"ttft", "itl", "e2e"};
