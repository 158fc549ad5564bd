/*
 * serve_metrics.c — the engine server's measurements per model: requests by
 * outcome, prompt and generated tokens, and latency histograms (time to
 * first token, inter-token latency, end-to-end), plus engine-wide numbers
 * (uptime, device memory).  STATUS reports them (docs/protocol.md), and the
 * extension turns them into llm_stat_models, llm_stat_engine and the
 * Prometheus text of llm_metrics() (docs/observability.md).
 *
 * Histograms have fixed buckets, the same for the three kinds, so they can
 * be exposed as Prometheus histograms as they are and their quantiles
 * computed the way Prometheus' histogram_quantile does (a fixed memory
 * cost, and every request counts, unlike a reservoir sample).  The buckets
 * cover 100 µs to 2560 s: a CPU-run small model's inter-token latency (well
 * under 10 ms) falls inside them as well as a long generation's end to end.
 *
 * A model's entry is made on its first request and lives as long as the
 * process: unloading keeps its counters (llm_stat_models shows them with
 * loaded false), and a reset zeroes them in place, so the pointer a
 * running request holds stays valid.
 */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LG_HAVE_GPU
#include "backend.h"
#include "lg_kernels.h"
#endif

/*
 * Bucket upper bounds in seconds; an implicit last bucket is +Inf.  Every
 * bound of vLLM's time-to-first-token and inter-token-latency histograms
 * is here, and finer ones below 1 ms.
 */
static const double bucket_bounds[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.04, 0.05,
	0.06, 0.075, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
	7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0
};

#define N_BOUNDS	((int) (sizeof(bucket_bounds) / sizeof(bucket_bounds[0])))

/* The kinds of histogram, in the order STATUS names them. */
static const char *const hist_names[SERVE_HIST_COUNT] = {"ttft", "itl", "e2e"};

/*
 * How a generation ended: the first three are successes (END's finish),
 * the rest ERROR statuses; "other" takes a status this list lacks.
 */
static const char *const outcome_names[] = {
	"stop", "length", "tool_calls",
	LG_WIRE_CANCELLED, LG_WIRE_TIMEOUT, LG_WIRE_BUSY, LG_WIRE_CONTEXT, LG_WIRE_NOMEM,
	LG_WIRE_ARG, LG_WIRE_RANGE, LG_WIRE_GRAMMAR, LG_WIRE_TEMPLATE, LG_WIRE_UNSUPPORTED,
	LG_WIRE_FORMAT, LG_WIRE_IO, LG_WIRE_INTERNAL, LG_WIRE_PROTOCOL, LG_WIRE_NOT_FOUND,
	/* a remote model's provider (serve_provider.c) */
	LG_WIRE_REMOTE_AUTH, LG_WIRE_REMOTE_RATE_LIMIT, LG_WIRE_REMOTE_UNAVAILABLE, LG_WIRE_REMOTE_NOT_FOUND,
	LG_WIRE_REMOTE_REJECTED, LG_WIRE_REMOTE_PROTOCOL, LG_WIRE_REMOTE_UNSUPPORTED,
	"other"
};

#define N_OUTCOMES		((int) (sizeof(outcome_names) / sizeof(outcome_names[0])))
#define N_SUCCESS		3
#define OUTCOME_CANCELLED 3

typedef struct serve_hist
{
	int64_t		count;
	double		sum;			/* seconds */
	int64_t		buckets[N_BOUNDS + 1];	/* per bucket, not cumulative; last: +Inf */
} serve_hist;

struct serve_metrics
{
	char		name[64];
	pthread_mutex_t lock;		/* guards everything below */
	int64_t		outcomes[N_OUTCOMES];
	int64_t		prompt_tokens;	/* of finished requests, cached ones included */
	int64_t		gen_tokens;		/* counted as they are sampled */
	int64_t		embed_requests; /* EMBED requests ended, any outcome (also in outcomes) */
	int64_t		embed_inputs;	/* texts they embedded */
	int64_t		embed_prompt_tokens;	/* their tokens (also in prompt_tokens) */
	serve_hist	hist[SERVE_HIST_COUNT];
	struct serve_metrics *next;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static serve_metrics *metrics_list;
static int64_t started_mono_us;
static int64_t started_wall_us;
static _Atomic int64_t reset_wall_us;

/* Remember when the server started (uptime counts from here). */
void
serve_metrics_init(void)
{
	started_mono_us = serve_now_us();
	started_wall_us = serve_wall_us();
	atomic_store(&reset_wall_us, started_wall_us);
}

/* The entry of model name, made on first use; NULL when out of memory. */
serve_metrics *
serve_metrics_get(const char *name)
{
	serve_metrics *m;

	if (name == NULL || name[0] == '\0')
		return NULL;
	pthread_mutex_lock(&metrics_lock);
	for (m = metrics_list; m != NULL; m = m->next)
		if (strcmp(m->name, name) == 0)
			break;
	if (m == NULL && (m = calloc(1, sizeof(*m))) != NULL)
	{
		snprintf(m->name, sizeof(m->name), "%s", name);
		pthread_mutex_init(&m->lock, NULL);
		m->next = metrics_list;
		metrics_list = m;
	}
	pthread_mutex_unlock(&metrics_lock);
	return m;
}

/* Count one observation of us microseconds (caller holds m->lock). */
static void
hist_observe(serve_hist *h, int64_t us)
{
	double		s = us > 0 ? us / 1e6 : 0;
	int			i = 0;

	while (i < N_BOUNDS && s > bucket_bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += s;
}

/*
 * A token was sampled for a request of m: the first one's time since the
 * request arrived is its time to first token, every later one's gap since
 * the previous token an inter-token latency.
 */
void
serve_metrics_token(serve_metrics *m, bool first, int64_t us)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	hist_observe(&m->hist[first ? SERVE_HIST_TTFT : SERVE_HIST_ITL], us);
	m->gen_tokens++;
	pthread_mutex_unlock(&m->lock);
}

/* Index of an outcome name. */
static int
outcome_index(const char *outcome)
{
	for (int i = 0; i < N_OUTCOMES - 1; i++)
		if (strcmp(outcome_names[i], outcome) == 0)
			return i;
	return N_OUTCOMES - 1;
}

/* An EMBED request of m returned n_inputs vectors. */
void
serve_metrics_embedded(serve_metrics *m, int n_inputs)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->embed_inputs += n_inputs;
	pthread_mutex_unlock(&m->lock);
}

/*
 * A GENERATE or EMBED request ended: count its outcome, prompt tokens and
 * end-to-end time, and log it when it was slow (its log_min_duration_ms field, else
 * --log-min-duration-ms).  Called just before its END or ERROR is sent,
 * and again when its last reference goes (only the first call counts), so
 * one whose client went away without an answer counts too, as cancelled.
 */
void
serve_metrics_finish(serve_request *r)
{
	serve_metrics *m = r->metrics ? r->metrics : serve_metrics_get(r->model);
	const char *outcome = r->outcome ? r->outcome : LG_WIRE_CANCELLED;
	int64_t		e2e_us = serve_now_us() - r->arrive_us;
	int			n_prompt = atomic_load(&r->n_prompt);
	int			n_gen = atomic_load(&r->n_gen);

	if (atomic_exchange(&r->counted, true))
		return;
	if (m != NULL)
	{
		pthread_mutex_lock(&m->lock);
		m->outcomes[outcome_index(outcome)]++;
		m->prompt_tokens += n_prompt;
		/*
		 * an embedding is a request with a prompt and no decode steps, as
		 * vLLM counts pooling requests: its outcome, prompt tokens and end
		 * to end time are the model's, and it is also counted on its own
		 */
		if (r->type == LG_FRAME_EMBED)
		{
			m->embed_requests++;
			m->embed_prompt_tokens += n_prompt;
		}
		hist_observe(&m->hist[SERVE_HIST_E2E], e2e_us);
		pthread_mutex_unlock(&m->lock);
	}
	if (r->log_min_duration_ms >= 0 && e2e_us >= (int64_t) r->log_min_duration_ms * 1000)
		serve_log(SERVE_LOG_INFO, "slow request: %.3f ms, model \"%s\", backend PID %d, role \"%s\", "
				  "%d prompt tokens, %d generated, outcome %s",
				  e2e_us / 1000.0, r->model, r->backend_pid, r->role, n_prompt, n_gen, outcome);
}

/* Zero every model's counters and histograms (STATUS with reset=1). */
void
serve_metrics_reset(void)
{
	pthread_mutex_lock(&metrics_lock);
	for (serve_metrics *m = metrics_list; m != NULL; m = m->next)
	{
		pthread_mutex_lock(&m->lock);
		memset(m->outcomes, 0, sizeof(m->outcomes));
		m->prompt_tokens = 0;
		m->gen_tokens = 0;
		m->embed_requests = 0;
		m->embed_inputs = 0;
		m->embed_prompt_tokens = 0;
		memset(m->hist, 0, sizeof(m->hist));
		pthread_mutex_unlock(&m->lock);
	}
	pthread_mutex_unlock(&metrics_lock);
	atomic_store(&reset_wall_us, serve_wall_us());
	serve_log(SERVE_LOG_INFO, "statistics reset");
}

/*
 * Memory of a device ("cpu", "cuda:N", "hip:N", "gpu:N", "auto"): the
 * device's name, bytes in use and total.  A GPU reports what its driver
 * says is used by every process on it; the CPU reports this process's
 * resident set and the machine's physical memory.
 */
static void
device_memory(const char *device, char *name, size_t size, int64_t *used, int64_t *total)
{
	long		page = sysconf(_SC_PAGESIZE);
	FILE	   *f;
	long long	rss = 0;

#ifdef LG_HAVE_GPU
	{
		const char *colon = device ? strchr(device, ':') : NULL;
		bool		gpu = device == NULL || device[0] == '\0' || strcmp(device, "auto") == 0 ||
			(colon != NULL && strncmp(device, "cpu", 3) != 0);
		int			n = colon ? atoi(colon + 1) : 0;
		lg_gpu_device_info info;

		if (gpu && n >= 0 && n < lg_backend_gpu_count() && lg_gpu_device_info_get(n, &info) == LG_GPU_OK)
		{
			snprintf(name, size, "%s:%d", lg_gpu_platform(), n);
			*used = (int64_t) (info.total_mem - info.free_mem);
			*total = (int64_t) info.total_mem;
			return;
		}
	}
#endif
	(void) device;
	snprintf(name, size, "cpu");
	if ((f = fopen("/proc/self/statm", "r")) != NULL)
	{
		long long	vsize;

		if (fscanf(f, "%lld %lld", &vsize, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	*used = (int64_t) rss * page;
	*total = (int64_t) sysconf(_SC_PHYS_PAGES) * page;
}

/* One "model_memory" field for a loaded model (called by serve_models_describe). */
void
serve_metrics_describe_model(serve_frame *f, const char *name, const char *device,
							 int64_t weights_bytes, int64_t kv_bytes)
{
	serve_frame_fieldf(f, "model_memory", "%s\t%s\t%lld\t%lld", name, device,
					   (long long) weights_bytes, (long long) kv_bytes);
}

/*
 * The engine-wide fields and, per model that had requests, one "metrics"
 * and one "histogram" field per kind (docs/protocol.md).
 */
void
serve_metrics_describe(serve_frame *f)
{
	char		dev[32];
	int64_t		used;
	int64_t		total;

	device_memory(serve_opts.device, dev, sizeof(dev), &used, &total);
	serve_frame_fieldf(f, "uptime_ms", "%lld", (long long) ((serve_now_us() - started_mono_us) / 1000));
	serve_frame_fieldf(f, "started_unix_us", "%lld", (long long) started_wall_us);
	serve_frame_fieldf(f, "stats_reset_unix_us", "%lld", (long long) atomic_load(&reset_wall_us));
	serve_frame_fieldf(f, "device_memory", "%s\t%lld\t%lld", dev, (long long) used, (long long) total);

	pthread_mutex_lock(&metrics_lock);
	for (serve_metrics *m = metrics_list; m != NULL; m = m->next)
	{
		char		outcomes[1024];
		size_t		off = 0;
		int64_t		requests = 0;
		int64_t		errors = 0;

		pthread_mutex_lock(&m->lock);
		outcomes[0] = '\0';
		for (int i = 0; i < N_OUTCOMES; i++)
		{
			requests += m->outcomes[i];
			if (i >= N_SUCCESS && i != OUTCOME_CANCELLED)
				errors += m->outcomes[i];
			if (m->outcomes[i] > 0 && off < sizeof(outcomes))
				off += snprintf(outcomes + off, sizeof(outcomes) - off, "%s%s:%lld", off ? "," : "",
								outcome_names[i], (long long) m->outcomes[i]);
		}
		serve_frame_fieldf(f, "metrics", "%s\t%lld\t%lld\t%lld\t%lld\t%s\t%lld\t%lld\t%lld", m->name,
						   (long long) requests, (long long) errors, (long long) m->prompt_tokens,
						   (long long) m->gen_tokens, outcomes, (long long) m->embed_requests,
						   (long long) m->embed_inputs, (long long) m->embed_prompt_tokens);
		for (int k = 0; k < SERVE_HIST_COUNT; k++)
		{
			const serve_hist *h = &m->hist[k];
			char		bounds[512];
			char		counts[1024];
			size_t		bo = 0;
			size_t		co = 0;
			int64_t		cum = 0;

			/* cumulative counts, as Prometheus' le buckets; the last is +Inf = count */
			for (int i = 0; i <= N_BOUNDS; i++)
			{
				cum += h->buckets[i];
				if (i < N_BOUNDS && bo < sizeof(bounds))
					bo += snprintf(bounds + bo, sizeof(bounds) - bo, "%s%g", i ? "," : "", bucket_bounds[i]);
				if (co < sizeof(counts))
					co += snprintf(counts + co, sizeof(counts) - co, "%s%lld", i ? "," : "", (long long) cum);
			}
			serve_frame_fieldf(f, "histogram", "%s\t%s\t%lld\t%.9g\t%s\t%s", m->name, hist_names[k],
							   (long long) h->count, h->sum, bounds, counts);
		}
		pthread_mutex_unlock(&m->lock);
	}
	pthread_mutex_unlock(&metrics_lock);
}
