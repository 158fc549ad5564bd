/*
 * serve_provider_http.c — a remote model's HTTP transfer with libcurl: one
 * POST run in a multi loop that wakes every POLL_MS to see whether the
 * request was cancelled (CANCEL frame, closed connection) or timed out, and
 * stops the transfer at once (the provider sees the connection close).
 * Failures before any output (HTTP 408, 429, 5xx, a failed connection) are
 * retried with exponential back-off and jitter, or after the provider's
 * Retry-After, at most max_retries times and never past the deadline.
 * Connections are reused across requests through a pool of multi handles.
 */
#include "serve_provider.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_value.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;
/* TLS sessions and DNS answers shared by every request's transfer */
static CURLSH *curl_share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

/* libcurl's lock callback for the share. */
static void
share_lock(CURL *easy, curl_lock_data data, curl_lock_access access, void *arg)
{
	pthread_mutex_lock(&share_locks[data]);
}

/* libcurl's unlock callback for the share. */
static void
share_unlock(CURL *easy, curl_lock_data data, void *arg)
{
	pthread_mutex_unlock(&share_locks[data]);
}

/*
 * curl_global_init is not thread-safe: once, before the first transfer.
 * The share lets requests reuse DNS answers and TLS sessions.
 */
static void
curl_init_once(void)
{
	curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
	if (!curl_ready)
		return;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&share_locks[i], NULL);
	curl_share = curl_share_init();
	if (curl_share == NULL)
		return;
	curl_share_setopt(curl_share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(curl_share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(curl_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(curl_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	/* not CURL_LOCK_DATA_CONNECT: unsafe across threads (libcurl's known bugs); see multi_take */
}

/*
 * Idle multi handles.  A multi handle owns a connection cache: taking one
 * that an earlier request used lets this request reuse the connection that
 * one left open to the same provider (no new TCP and TLS handshake), while
 * only one thread at a time ever uses a handle.
 */
#define MULTI_POOL_MAX 16
static pthread_mutex_t multi_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static CURLM *multi_pool[MULTI_POOL_MAX];
static int	multi_pool_n;

/* An idle multi handle, or a new one; NULL when out of memory. */
static CURLM *
multi_take(void)
{
	CURLM	   *m = NULL;

	pthread_mutex_lock(&multi_pool_lock);
	if (multi_pool_n > 0)
		m = multi_pool[--multi_pool_n];
	pthread_mutex_unlock(&multi_pool_lock);
	return m ? m : curl_multi_init();
}

/* Give a multi handle back (with its open connections), or free it when the pool is full. */
static void
multi_give(CURLM *m)
{
	pthread_mutex_lock(&multi_pool_lock);
	if (multi_pool_n < MULTI_POOL_MAX)
	{
		multi_pool[multi_pool_n++] = m;
		m = NULL;
	}
	pthread_mutex_unlock(&multi_pool_lock);
	if (m)
		curl_multi_cleanup(m);
}

/* Whether r should stop now: cancelled, timed out, or its client gone. */
static bool
must_stop(serve_request *r)
{
	if (r->deadline_us && serve_now_us() >= r->deadline_us)
		atomic_store(&r->timed_out, true);
	return atomic_load(&r->cancel) || atomic_load(&r->timed_out) || r->peer_gone ||
		atomic_load(&r->conn->closed);
}

/* Sleep ms milliseconds in short naps; false when r must stop. */
static bool
nap(serve_request *r, int64_t ms)
{
	int64_t		until = serve_now_us() + ms * 1000;

	while (serve_now_us() < until)
	{
		int64_t		left = (until - serve_now_us()) / 1000;
		struct timespec ts = {0, (long) (left < POLL_MS ? left : POLL_MS) * 1000000L};

		if (must_stop(r))
			return false;
		nanosleep(&ts, NULL);
	}
	return !must_stop(r);
}

/* Run one transfer in a multi loop that checks for cancellation every POLL_MS; its result. */
static CURLcode
perform(serve_request *r, CURL *easy, bool *stopped)
{
	CURLM	   *multi = multi_take();
	CURLcode	res = CURLE_OK;
	int			running = 1;
	CURLMsg    *msg;
	int			left;

	*stopped = false;
	if (multi == NULL)
		return CURLE_OUT_OF_MEMORY;
	curl_multi_add_handle(multi, easy);
	while (running)
	{
		if (curl_multi_perform(multi, &running) != CURLM_OK)
		{
			res = CURLE_FAILED_INIT;
			break;
		}
		if (!running)
			break;
		if (must_stop(r))
		{
			*stopped = true;
			break;
		}
		curl_multi_poll(multi, NULL, 0, POLL_MS, NULL);
	}
	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			res = msg->data.result;
	/* a transfer stopped midway closes its connection: the provider sees it and stops */
	curl_multi_remove_handle(multi, easy);
	multi_give(multi);
	return res;
}

/* Whether an HTTP status is worth another attempt. */
static bool
http_retryable(long status)
{
	return status == 408 || status == 429 || status == 500 || status == 502 ||
		status == 503 || status == 504;
}

/* Whether a transfer error is worth another attempt (the connection, not the answer, failed). */
static bool
curl_retryable(CURLcode res)
{
	return res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
		res == CURLE_OPERATION_TIMEDOUT || res == CURLE_SEND_ERROR || res == CURLE_RECV_ERROR ||
		res == CURLE_GOT_NOTHING || res == CURLE_PARTIAL_FILE;
}

/* The error body's message (the provider's error.message, else the body's start), redacted. */
static void
body_message(provider_call *c, char *out, size_t size)
{
	lg_error	err = {0};
	lg_json_node *o = c->body.len ? lg_json_parse(c->body.data, c->body.len, &err) : NULL;
	const char *m = o ? provider_error_message(o) : NULL;

	if (m == NULL && o != NULL)
		m = lg_json_get_str(o, "message");
	/* quoted after a prefix: the extension makes the detail a sentence, the message stays as sent */
	snprintf(out, size, "The provider said: ");
	if (m)
		provider_copy_redacted(out + strlen(out), size - strlen(out), m, strlen(m), c->api_key);
	else if (c->body.len)
		provider_copy_redacted(out + strlen(out), size - strlen(out), c->body.data,
					  c->body.len < 300 ? c->body.len : 300, c->api_key);
	else
		snprintf(out, size, "The provider sent no message.");
	lg_json_node_free(o);
}

/* Send the ERROR for an HTTP status the provider answered with (after the retries). */
static void
send_http_error(serve_request *r, provider_call *c, const char *url, int attempts)
{
	char		detail[1024];
	char		hint[160];
	long		st = c->http_status;

	body_message(c, detail, sizeof(detail));
	if (st == 401 || st == 403)
		serve_send_error_detail(r, LG_WIRE_REMOTE_AUTH, detail,
								c->api_key ? "Check the secret named by the model's api_key_secret in llamagpu.llm_secrets." :
								"The model has no api_key_secret: store the key with llamagpu.llm_set_secret() and register the model with it.",
								"the provider refused the request (HTTP %ld)", st);
	else if (st == 429)
	{
		if (c->retry_after_s >= 0)
			snprintf(hint, sizeof(hint), "The provider asks to retry after %.0f seconds.", c->retry_after_s);
		else
			snprintf(hint, sizeof(hint), "Retry later, or raise the model's option \"max_retries\".");
		serve_send_error_detail(r, LG_WIRE_REMOTE_RATE_LIMIT, detail, hint,
								"the provider rate-limited the request (HTTP 429, %d attempt%s)",
								attempts, attempts == 1 ? "" : "s");
	}
	else if (st >= 500 || st == 408)
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNAVAILABLE, detail, NULL,
								"the provider failed with HTTP %ld (%d attempt%s)",
								st, attempts, attempts == 1 ? "" : "s");
	else if (st == 404)
		serve_send_error_detail(r, LG_WIRE_REMOTE_NOT_FOUND, detail,
								"Check the model's base_url and remote_model.",
								"the provider answered HTTP 404 for %s", url);
	else
		serve_send_error_detail(r, LG_WIRE_REMOTE_REJECTED, detail, NULL,
								"the provider rejected the request (HTTP %ld)", st);
}

/* The ERROR for a request stopped by cancel, timeout or its client going away. */
static void
send_stopped(serve_request *r, provider_call *c)
{
	if (atomic_load(&r->timed_out))
		serve_send_error(r, LG_WIRE_TIMEOUT, "the remote model did not finish in time (%d pieces received)",
						 c->n_pieces);
	else if (r->peer_gone || atomic_load(&r->conn->closed))
	{
		serve_request_unlist(r);
		serve_log(SERVE_LOG_DEBUG, "request %llu: client went away", (unsigned long long) r->seq);
	}
	else
		serve_send_error(r, LG_WIRE_CANCELLED, "the request was cancelled");
}

/* The back-off before attempt `attempt` (1 = the first retry), in ms: exponential, half jitter. */
static int64_t
backoff_ms(const provider_opts *po, int attempt, unsigned *seed)
{
	double		d = po->retry_base_ms * pow(2, attempt - 1);

	if (d > po->retry_max_ms)
		d = po->retry_max_ms;
	return (int64_t) (d / 2 + d / 2 * (rand_r(seed) / (double) RAND_MAX));
}

/* Set up a POST of body to base_url + path; false with the error sent. */
bool
provider_http_begin(serve_request *r, provider_call *c, const provider_opts *po, const char *path,
		   const lg_buf *body, provider_http *h)
{
	const char *base = serve_fields_get(&r->fields, "base_url");

	lg_buf_append(&h->url, base, strlen(base));
	while (h->url.len > 0 && h->url.data[h->url.len - 1] == '/')
		h->url.data[--h->url.len] = '\0';
	lg_buf_append(&h->url, path, strlen(path));

	pthread_once(&curl_once, curl_init_once);
	if (!curl_ready || (h->easy = curl_easy_init()) == NULL)
	{
		serve_send_error(r, LG_WIRE_INTERNAL, "could not initialize libcurl");
		return false;
	}
	h->headers = curl_slist_append(h->headers, "Content-Type: application/json");
	/* no "Expect: 100-continue": a server that ignores it would cost a second per request */
	h->headers = curl_slist_append(h->headers, "Expect:");
	h->headers = curl_slist_append(h->headers, po->stream ? "Accept: text/event-stream, application/json" :
								   "Accept: application/json");
	if (c->api_key)
	{
		lg_buf_appendf(&h->auth, "Authorization: Bearer %s", c->api_key);
		h->headers = curl_slist_append(h->headers, h->auth.data);
	}
	curl_easy_setopt(h->easy, CURLOPT_URL, h->url.data);
	if (curl_share)
		curl_easy_setopt(h->easy, CURLOPT_SHARE, curl_share);
	curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, body->data);
	curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body->len);
	curl_easy_setopt(h->easy, CURLOPT_USERAGENT, "llamagpu");
	curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, provider_on_header);
	curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, provider_on_body);
	curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h->easy, CURLOPT_ACCEPT_ENCODING, "");
	/* a stalled stream is caught by the deadline; a dead peer by TCP keepalive */
	curl_easy_setopt(h->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	return true;
}

/* Free a transfer's handle and headers, wiping the Authorization header. */
void
provider_http_end(provider_http *h)
{
	if (h->easy)
		curl_easy_cleanup(h->easy);
	curl_slist_free_all(h->headers);
	if (h->auth.data)
		explicit_bzero(h->auth.data, h->auth.len);
	lg_buf_free(&h->auth);
	lg_buf_free(&h->url);
}

/*
 * Run the POST with retries: true when a 2xx answer was read to its end (an
 * event stream taken event by event, or a JSON body left in c->body);
 * false with the error (or nothing, when the client went away) sent.
 */
bool
provider_http_run(serve_request *r, provider_call *c, const provider_opts *po, provider_http *h, int *attempts)
{
	unsigned	seed = (unsigned) (serve_now_us() ^ r->seq);
	int64_t		deadline = r->deadline_us;
	CURLcode	res = CURLE_OK;
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		bool		stopped;
		int64_t		wait_ms;
		long		connect_ms = po->connect_timeout_ms;

		*attempts = attempt;
		if (deadline && (deadline - serve_now_us()) / 1000 < connect_ms)
			connect_ms = (long) ((deadline - serve_now_us()) / 1000) + 1;
		if (connect_ms < 1)
			connect_ms = 1;
		curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
		provider_call_reset(c);
		h->errbuf[0] = '\0';
		c->t_start_us = serve_now_us();
		atomic_store(&r->state, SERVE_STATE_PROMPT);
		res = perform(r, h->easy, &stopped);
		if (stopped)
		{
			send_stopped(r, c);
			return false;
		}
		if (c->fail_status[0])
		{
			serve_send_error_detail(r, c->fail_status, c->fail_detail[0] ? c->fail_detail : NULL, NULL,
									"%s", c->fail_msg);
			return false;
		}
		if (res == CURLE_OK && c->http_status >= 200 && c->http_status < 300)
			return true;
		/* failed: another attempt only while nothing was streamed */
		if (c->streamed || attempt > po->max_retries ||
			(res == CURLE_OK ? !http_retryable(c->http_status) : !curl_retryable(res)))
			break;
		wait_ms = backoff_ms(po, attempt, &seed);
		if (res == CURLE_OK && c->retry_after_s >= 0)
		{
			if (c->retry_after_s * 1000 > po->retry_max_ms)
				break;			/* longer than we may wait: report it */
			wait_ms = (int64_t) (c->retry_after_s * 1000);
		}
		if (deadline && serve_now_us() + wait_ms * 1000 >= deadline)
			break;				/* no time left for another attempt: report this one */
		serve_log(SERVE_LOG_INFO, "request %llu: provider answered %ld%s%s, retrying in %lld ms",
				  (unsigned long long) r->seq, c->http_status, res == CURLE_OK ? "" : ": ",
				  res == CURLE_OK ? "" : curl_easy_strerror(res), (long long) wait_ms);
		if (!nap(r, wait_ms))
		{
			send_stopped(r, c);
			return false;
		}
	}
	if (res == CURLE_OK)
		send_http_error(r, c, h->url.data, attempt);
	else if (c->streamed)
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNAVAILABLE, h->errbuf[0] ? h->errbuf : NULL, NULL,
								"the connection to the provider failed after %d pieces", c->n_pieces);
	else
		serve_send_error_detail(r, LG_WIRE_REMOTE_UNAVAILABLE, h->errbuf[0] ? h->errbuf : NULL,
								"Check the model's base_url and that the provider is running.",
								"could not reach the provider at %s (%d attempt%s)", h->url.data, attempt,
								attempt == 1 ? "" : "s");
	return false;
}
