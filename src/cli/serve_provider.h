/*
 * serve_provider.h — the parts of a remote model's request (docs/models.md, "Remote providers"),
 * shared by serve_provider.c (dispatch, options, generation),
 * serve_provider_http.c (libcurl transfers, retries, cancellation),
 * serve_provider_answer.c (reading the answer: SSE events, JSON bodies) and
 * serve_provider_embed.c (embeddings).  Private to the engine server.
 */
#ifndef LG_SERVE_PROVIDER_H
#define LG_SERVE_PROVIDER_H

#include <curl/curl.h>
#include <time.h>

#include "json_value.h"
#include "serve.h"

#define PROVIDER_OPENAI		"openai-compatible"
#define BODY_MAX			((size_t) 16 * 1024 * 1024)	/* a non-streamed answer or an error body */
#define EVENT_MAX			((size_t) 4 * 1024 * 1024)	/* one Server-Sent Event */
#define MAX_TOOL_CALLS		64
#define POLL_MS				50

/* Append a string literal. */
#define APPEND_LIT(b, s)	lg_buf_append((b), (s), sizeof(s) - 1)

/* What the model's options say about its endpoint (llm_register_remote_model). */
typedef struct provider_opts
{
	int			connect_timeout_ms; /* TCP and TLS handshake */
	int			timeout_ms;		/* whole call, when the request sets none */
	int			max_retries;	/* attempts after the first */
	int			retry_base_ms;	/* first back-off; doubles each time */
	int			retry_max_ms;	/* longest single wait, Retry-After included */
	bool		chat_api;		/* prompts go to /chat/completions as one user message */
	bool		stream;
	bool		sampling_extensions;	/* send top_k, min_p, ... (llama.cpp, vLLM) */
} provider_opts;

/* One tool call being assembled from streamed deltas. */
typedef struct tool_call
{
	lg_buf		id;
	lg_buf		name;
	lg_buf		args;
} tool_call;

/* One attempt's state, reset before each attempt. */
typedef struct provider_call
{
	serve_request *r;
	const char *api_key;		/* to redact from messages; NULL: none */
	long		http_status;
	bool		event_stream;	/* Content-Type: text/event-stream */
	double		retry_after_s;	/* Retry-After, or -1 */
	lg_buf		line;			/* SSE: the line being read */
	bool		after_cr;		/* SSE: the last byte was a CR (a LF next ends no line) */
	lg_buf		data;			/* SSE: the event's data lines */
	lg_buf		body;			/* an error body, or a non-streamed answer */
	lg_buf		text;			/* everything streamed */
	tool_call	calls[MAX_TOOL_CALLS];
	int			n_calls;
	char		finish[32];
	long		n_prompt;		/* usage.prompt_tokens, or -1 */
	long		n_completion;	/* usage.completion_tokens, or -1 */
	int			n_pieces;
	bool		streamed;		/* a PIECE was sent: no retry from here on */
	bool		done;			/* data: [DONE] */
	char		fail_status[32];	/* set when the answer is unusable: abort */
	char		fail_msg[512];
	char		fail_detail[1024];
	int64_t		t_start_us;
	int64_t		t_first_us;
} provider_call;

/* What a transfer needs besides the call: the handle, its URL and headers. */
typedef struct provider_http
{
	CURL	   *easy;
	struct curl_slist *headers;
	lg_buf		url;
	lg_buf		auth;
	char		errbuf[CURL_ERROR_SIZE];
} provider_http;

/* ---- serve_provider.c ---- */

/* Set up a call's buffers and options (the model's timeout when the request has none). */
void		provider_call_begin(serve_request *r, provider_call *c, provider_opts *po);
/* Forget an attempt's answer before the next one (buffers kept). */
void		provider_call_reset(provider_call *c);
/* Free a call's buffers. */
void		provider_call_end(provider_call *c);

/* ---- serve_provider_answer.c ---- */

/* Copy src into dst (one line, at most size - 1 bytes), with the API key replaced by "***". */
void		provider_copy_redacted(char *dst, size_t size, const char *src, size_t len, const char *key);
/* Mark the attempt failed: the transfer is aborted, the error sent, no retry. */
void		provider_call_fail(provider_call *c, const char *status, const char *detail, const char *fmt, ...)
			__attribute__((format(printf, 4, 5)));
/* The provider's error object ({"error": {"message": ..}} or {"error": ".."}) as text, or NULL. */
const char *provider_error_message(const lg_json_node *o);
/* Parse one JSON text (an SSE event's data or a whole body) and take the answer in it. */
void		provider_take_json(provider_call *c, const char *s, size_t len);
/* One complete SSE line without its end of line; an empty one ends an event. */
void		provider_sse_line(provider_call *c, const char *s, size_t len);
/* The assistant message of a chat answer (JSON): content and the assembled tool calls. */
void		provider_answer_message(provider_call *c, lg_buf *m);
/* A Retry-After value (seconds or an HTTP date, counted from now) in seconds, or -1. */
double		provider_parse_retry_after(const char *v, time_t now);
/* The transfer ended: take a JSON body, or the stream's last line and event if unterminated. */
void		provider_answer_end(provider_call *c);
/* libcurl's header callback: status line, Content-Type, Retry-After. */
size_t		provider_on_header(char *buf, size_t size, size_t n, void *arg);
/* libcurl's write callback: an SSE stream, a JSON body, or an error body. */
size_t		provider_on_body(char *buf, size_t size, size_t n, void *arg);

/* ---- serve_provider_http.c ---- */

/* Set up a POST of body to base_url + path; false with the error sent. */
bool		provider_http_begin(serve_request *r, provider_call *c, const provider_opts *po,
								const char *path, const lg_buf *body, provider_http *h);
/* Run the POST with retries: true when a 2xx answer was read to its end; false with the error sent. */
bool		provider_http_run(serve_request *r, provider_call *c, const provider_opts *po,
							  provider_http *h, int *attempts);
/* Free a transfer's handle and headers, wiping the Authorization header. */
void		provider_http_end(provider_http *h);

/* ---- serve_provider_embed.c ---- */

/* EMBED for a remote model: POST {base_url}/embeddings, one RESULT with every vector. */
void		provider_embed(serve_request *r);

#endif							/* LG_SERVE_PROVIDER_H */
