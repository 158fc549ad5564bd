/*
 * serve.h — the engine server behind `llamagpu serve`: connections, requests
 * and the table of loaded models.  The main thread runs a poll loop that
 * accepts connections, reads frames and handles cancellation and timeouts.
 * Each request starts on a short-lived worker thread (parsing, tokenizing,
 * loading the model); a generation is then submitted to the model's
 * scheduler (scheduler.h), whose one thread per loaded model runs every
 * generation of that model in shared batches and streams their replies.
 */
#ifndef LG_SERVE_H
#define LG_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "lg_error.h"
#include "model.h"
#include "scheduler.h"
#include "serve_protocol.h"

/* Settings from the command line, fixed for the life of the process. */
typedef struct serve_options
{
	const char *socket_dir;
	const char *model_dir;
	int			threads;		/* per loaded model's scheduler; 0 = all CPUs */
	int			kv_cache_mb;	/* each model's KV block pool; 0 = max_seqs sequences of ctx_size */
	int			ctx_size;		/* positions per sequence at most; 0 = model's, at most 4096 */
	int			max_batch_tokens;	/* tokens per scheduler step */
	int			max_queued;		/* waiting generations per model */
	int			max_seqs;		/* running generations per model */
	int			kv_block_size;	/* positions per KV block */
	bool		prefix_cache;	/* share KV blocks of common prompt prefixes */
	int			log_level;		/* SERVE_LOG_* */
	int			token_delay_ms; /* test hook: sleep after each token */
	int			grammar_cache;	/* compiled grammars kept (LRU); 0 = none */
	const char *device;			/* --device: lg_backend_open's name ("auto") */
	int			log_min_duration_ms;	/* log generations that took this long; -1 = off */
} serve_options;

extern serve_options serve_opts;

#define SERVE_LOG_ERROR		0
#define SERVE_LOG_WARNING	1
#define SERVE_LOG_INFO		2
#define SERVE_LOG_DEBUG		3

/*
 * Log a line to stderr, which the supervisor leaves pointing at the
 * Postgres server log: "llamagpu: engine[PID] LEVEL: message", and
 * " (backend PID N)" when the thread is working for a request.
 */
void		serve_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The backend PID of the request this thread works for (0: none), for serve_log. */
extern _Thread_local int serve_log_backend_pid;

/* ---- frames (serve_frame.c) ---- */

/* A growable output buffer for one frame. */
typedef struct serve_frame
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		oom;
} serve_frame;

void		serve_frame_begin(serve_frame *f, char type, uint32_t id);
void		serve_frame_append(serve_frame *f, const char *data, size_t len);
void		serve_frame_field(serve_frame *f, const char *key, const char *value);
void		serve_frame_fieldf(serve_frame *f, const char *key, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));
/* Patch the length into the header; false if the buffer could not grow. */
bool		serve_frame_finish(serve_frame *f);
void		serve_frame_free(serve_frame *f);

/* The fields of a request payload ("key\0value\0" ...), pointing into it. */
typedef struct serve_fields
{
	int			n;
	const char **keys;
	const char **values;
} serve_fields;

/* Split a payload into fields; false if it is malformed. */
bool		serve_fields_parse(const char *payload, size_t len, serve_fields *out);
void		serve_fields_free(serve_fields *f);
/* The first value of key, or NULL. */
const char *serve_fields_get(const serve_fields *f, const char *key);

/* ---- connections and requests (cmd_serve.c, serve_request.c) ---- */

/* Replies a connection may leave unread before it is disconnected. */
#define SERVE_OUT_MAX ((size_t) 2 * LG_PROTO_MAX_PAYLOAD)

typedef struct serve_conn
{
	int			fd;
	pthread_mutex_t write_lock;	/* guards the output buffer and the socket's sends */
	char	   *obuf;			/* replies the socket did not take yet */
	size_t		olen;
	size_t		ocap;
	atomic_bool pending;		/* olen > 0: the poll loop waits for POLLOUT */
	atomic_int	refs;			/* the poll loop's plus one per running request */
	atomic_bool closed;			/* the peer went away */
	bool		hello;			/* handshake done */
	char	   *rbuf;			/* bytes read, not yet a whole frame */
	size_t		rlen;
	size_t		rcap;
} serve_conn;

typedef enum serve_state
{
	SERVE_STATE_QUEUED = 0,
	SERVE_STATE_PROMPT,
	SERVE_STATE_GENERATING,
	SERVE_STATE_DONE
} serve_state;

struct serve_model;
typedef struct serve_grammar serve_grammar;
typedef struct serve_metrics serve_metrics;

typedef struct serve_request
{
	uint64_t	seq;			/* server-wide id, shown by STATUS */
	uint32_t	id;				/* the client's id, echoed in replies */
	char		type;			/* LG_FRAME_* */
	serve_conn *conn;
	char	   *payload;		/* owned; fields point into it */
	serve_fields fields;
	atomic_bool cancel;			/* CANCEL frame, closed connection, timeout, unload */
	atomic_bool timed_out;		/* timeout_ms passed */
	atomic_bool unloaded;		/* cancelled because its model was unloaded */
	atomic_int	refs;			/* the worker thread's, plus the scheduler's while submitted */
	struct serve_model *sm;		/* the model it holds a reference on, or NULL */
	_Atomic uint64_t sched_id;	/* its id in sm's scheduler; 0 until submitted */
	bool		peer_gone;		/* a send failed (scheduler thread only) */
	bool		unlisted;		/* out of the request list (under its lock) */
	atomic_int	state;
	atomic_int	n_prompt;
	atomic_int	n_gen;
	int			backend_pid;
	char		role[64];
	char		model[64];
	int64_t		start_us;		/* wall clock */
	int64_t		gen_start_us;	/* monotonic, when the first token was produced */
	int64_t		deadline_us;	/* monotonic; 0 = none */
	serve_grammar *grammar;		/* the constraint it holds (serve_grammar.c), or NULL */
	const struct serve_plugin *plugin;	/* its logits processor (serve_plugins.c), or NULL */
	void	   *plugin_state;	/* the plugin's, from request_begin */
	bool		plugin_failed;	/* the plugin's logits hook failed it */
	bool		chat;			/* a messages request: END carries the assistant message */
	int			chat_format;	/* lg_chat_format of its template */
	serve_metrics *metrics;		/* its model's measurements (GENERATE, EMBED), or NULL */
	const char *outcome;		/* how it ended: END's finish or ERROR's status (static text) */
	int64_t		arrive_us;		/* monotonic, when its frame was read */
	int64_t		last_token_us;	/* monotonic, when its latest token was sampled */
	int			log_min_duration_ms;	/* log it if it takes this long; -1 = never */
	atomic_bool counted;		/* serve_metrics_finish ran */
	struct serve_request *prev;
	struct serve_request *next;
} serve_request;

void		serve_conn_release(serve_conn *c);
/* Send a finished frame without blocking (the rest is queued); false if the peer is gone. */
bool		serve_conn_send(serve_conn *c, serve_frame *f);
/* Send an ERROR frame with status and message. */
void		serve_send_error(serve_request *r, const char *status, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));
/* The same with detail (where the problem is) and hint fields; either may be NULL. */
void		serve_send_error_detail(serve_request *r, const char *status, const char *detail,
									const char *hint, const char *fmt, ...)
			__attribute__((format(printf, 5, 6)));

/* The wire name (LG_WIRE_*) of an engine status. */
const char *serve_wire_status(lg_status s);
/* Take r out of STATUS (before its final reply goes out). */
void		serve_request_unlist(serve_request *r);
/* Drop a reference to r (the scheduler's, after its final reply). */
void		serve_request_put(serve_request *r);

/* ---- embeddings (serve_embed.c) ---- */

struct serve_model;
/* EMBED: tokenize and submit to the model's scheduler; true when submitted. */
bool		serve_embed(serve_request *r, struct serve_model *sm);

/* Start a worker thread for the request (takes ownership). */
bool		serve_request_start(serve_request *r);
/* Mark every running request of conn (and id, unless any_id) cancelled. */
void		serve_requests_cancel(serve_conn *c, uint32_t id, bool any_id);
void		serve_requests_cancel_all(void);
/* Cancel every request using model m (it is being unloaded). */
void		serve_requests_cancel_model(struct serve_model *m);
/* Time out the requests whose timeout_ms passed, queued ones included. */
void		serve_requests_expire(void);
int			serve_requests_running(void);

int64_t		serve_now_us(void);		/* monotonic */
int64_t		serve_wall_us(void);

/* ---- compiled grammars (serve_grammar.c) ---- */

struct lg_grammar;

/* The cached grammar for key, with a reference; NULL when not cached. */
serve_grammar *serve_grammar_lookup(const char *key, size_t key_len);
/* Cache g (taken over) under key; the entry with a reference, NULL when out of memory. */
serve_grammar *serve_grammar_insert(const char *key, size_t key_len, struct lg_grammar *g);
const struct lg_grammar *serve_grammar_get(const serve_grammar *e);
void		serve_grammar_release(serve_grammar *e);
void		serve_grammar_stats(int *entries, int64_t *hits, int64_t *misses);
void		serve_grammar_cache_clear(void);

/* ---- structured output and chat (serve_structured.c) ---- */

/* Mark r a chat (messages) and find its template's tool-call format. */
void		serve_chat_detect(serve_request *r, struct serve_model *sm);
/*
 * The text to tokenize for a GENERATE: prompt, or messages rendered with the
 * chat template into buf (*chat: parse special tokens; *add_bos: add BOS).
 * NULL with the error sent.
 */
const char *serve_generate_prompt(serve_request *r, struct serve_model *sm, lg_buf *buf,
								  bool *chat, bool *add_bos);
/* Find or compile r's grammar and point sr at it; false with the error sent. */
bool		serve_generate_constraint(serve_request *r, struct serve_model *sm, lg_sched_request *sr);
/* A chat answer as the OpenAI assistant message (appended to msg); false when out of memory. */
bool		serve_chat_message(serve_request *r, const char *text, size_t len, lg_buf *msg, int *n_calls,
							   bool cut);

/* ---- engine plugins (serve_plugins.c) ---- */

/* Add --plugin NAME:SHA256:PATH; false with err set. */
bool		serve_plugins_add(const char *spec, char *err, size_t err_size);
/* Open every plugin added, checking each checksum; failures are logged and left out. */
void		serve_plugins_load(void);
/* One "plugin" field per plugin (STATUS): name TAB version TAB loaded|failed TAB error. */
void		serve_plugins_describe(serve_frame *f);
struct serve_model;
/* Start r's plugin (field logits_processor), setting sr->on_logits; false with the error sent. */
bool		serve_plugin_begin(serve_request *r, struct serve_model *sm, lg_sched_request *sr);
/* End r's plugin request, if it has one (request_end). */
void		serve_plugin_end(serve_request *r);

/* ---- remote models (serve_provider.c) ---- */

/* Whether r names a remote model (it carries a "provider" field). */
bool		serve_provider_is_remote(const serve_request *r);
/* Answer a request for a remote model (GENERATE over HTTP; others: an error). */
void		serve_provider_request(serve_request *r);

/* ---- measurements (serve_metrics.c) ---- */

#define SERVE_HIST_TTFT		0	/* request arrived -> first token */
#define SERVE_HIST_ITL		1	/* one token -> the next */
#define SERVE_HIST_E2E		2	/* request arrived -> it ended */
#define SERVE_HIST_COUNT	3

void		serve_metrics_init(void);
/* The measurements of model name (made on first use); NULL when out of memory. */
serve_metrics *serve_metrics_get(const char *name);
/* A token was sampled: first (us since arrival) or a later one (us since the previous). */
void		serve_metrics_token(serve_metrics *m, bool first, int64_t us);
/* A GENERATE or EMBED request ended: count its outcome and time; log it when slow. */
void		serve_metrics_finish(serve_request *r);
/* An EMBED request returned n_inputs vectors. */
void		serve_metrics_embedded(serve_metrics *m, int n_inputs);
void		serve_metrics_reset(void);
/* The engine-wide fields and every model's "metrics" and "histogram" fields (STATUS). */
void		serve_metrics_describe(serve_frame *f);
/* A loaded model's "model_memory" field (STATUS). */
void		serve_metrics_describe_model(serve_frame *f, const char *name, const char *device,
										 int64_t weights_bytes, int64_t kv_bytes);

/* ---- models (serve_models.c) ---- */

typedef struct serve_model
{
	char		name[64];
	char	   *path;
	lg_model   *model;
	lg_sched   *sched;			/* its generations; stepped by its own thread */
	int32_t		n_ctx;			/* the scheduler's positions per sequence */
	pthread_mutex_t lazy_lock;	/* guards the two below, built on first use */
	struct lg_grammar_vocab *grammar_vocab;	/* token bytes for grammar masks */
	struct lg_chat_template *chat_template;	/* the model's tokenizer.chat_template, parsed */
	atomic_bool stop;			/* tells the scheduler thread to free everything and end */
	int			refs;			/* requests using it */
	bool		listed;			/* still in the table (false: free at last release) */
	struct serve_model *next;
} serve_model;

/* The model called name, loaded from path if it is not loaded yet. */
serve_model *serve_model_acquire(const char *name, const char *path, lg_error *err);
void		serve_model_release(serve_model *m);
/* Unload name (now, or when its last request ends); false if not loaded. */
bool		serve_model_unload(const char *name);
/* m's grammar vocabulary, built on first use; NULL with err set. */
const struct lg_grammar_vocab *serve_model_grammar_vocab(serve_model *m, lg_error *err);
/* m's parsed chat template, parsed on first use; NULL with err set (LG_ERR_ARG: it has none). */
const struct lg_chat_template *serve_model_chat_template(serve_model *m, lg_error *err);
/* One "model" and one "sched" field per loaded model (STATUS). */
void		serve_models_describe(serve_frame *f);

#endif							/* LG_SERVE_H */
