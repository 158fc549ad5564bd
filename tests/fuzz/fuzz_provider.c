/*
 * fuzz_provider.c — libFuzzer target for reading a remote provider's answer
 * (src/cli/serve_provider_answer.c): the HTTP headers (status line,
 * Content-Type, Retry-After in seconds or as an HTTP date), a Server-Sent
 * Events stream cut into chunks as the network would, each event's OpenAI
 * JSON chunk (text deltas, tool-call deltas, finish reason, usage), and a
 * whole JSON body.
 *
 * fuzz-sources: src/cli/serve_frame.c src/cli/serve_provider_answer.c src/cli/serve_vectors.c
 * fuzz-libs: -lcurl
 *
 * Input: one byte (mode % 3, chunk size), then
 *   mode 0: an event stream (status 200, text/event-stream), fed in chunks;
 *   mode 1: a JSON body, taken whole;
 *   mode 2: header lines ("\n"-separated), each fed to the header callback.
 * Properties checked with a trap:
 *   - every PIECE frame is well formed, and the pieces put together are the
 *     text the call kept;
 *   - a stream read in chunks reads as the same stream in one piece (text,
 *     tool calls, finish reason, usage, failure);
 *   - a failure has a status and a message;
 *   - the assistant message built for END is JSON with the text as content;
 *   - Retry-After is -1 or finite and not negative; the status is 0 or 3 digits.
 * The socket, the clock and the metrics are stand-ins (below): the frames
 * the code builds are real (serve_frame.c) and checked.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve_provider.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static lg_buf pieces;			/* the PIECE payloads sent, put together */

/* Stand-in for the monotonic clock. */
int64_t
serve_now_us(void)
{
	static int64_t t;

	return t += 1000;
}

/* Stand-in for the metrics: a token's time must not be negative. */
void
serve_metrics_token(serve_metrics *m, bool first, int64_t us)
{
	(void) m;
	(void) first;
	CHECK(us >= 0);
}

/* Stand-in for the socket: check the frame, keep a PIECE's payload. */
bool
serve_conn_send(serve_conn *c, serve_frame *f)
{
	size_t		n;

	(void) c;
	CHECK(serve_frame_finish(f));
	n = ((size_t) (unsigned char) f->data[0] << 24) | ((size_t) (unsigned char) f->data[1] << 16) |
		((size_t) (unsigned char) f->data[2] << 8) | (unsigned char) f->data[3];
	CHECK(n == f->len - LG_PROTO_HEADER_SIZE);
	CHECK(f->data[4] == LG_FRAME_PIECE);
	lg_buf_append(&pieces, f->data + LG_PROTO_HEADER_SIZE, n);
	return true;
}

/* The call's buffers, as provider_call_begin sets them (without a request's options). */
static void
call_init(provider_call *c, serve_request *r)
{
	memset(c, 0, sizeof(*c));
	lg_buf_init(&c->line);
	lg_buf_init(&c->data);
	lg_buf_init(&c->body);
	lg_buf_init(&c->text);
	c->r = r;
	c->api_key = "sk-secret-key";
	c->retry_after_s = -1;
	c->n_prompt = c->n_completion = -1;
}

/* Free what call_init and the answer allocated. */
static void
call_free(provider_call *c)
{
	for (int i = 0; i < c->n_calls; i++)
	{
		lg_buf_free(&c->calls[i].id);
		lg_buf_free(&c->calls[i].name);
		lg_buf_free(&c->calls[i].args);
	}
	lg_buf_free(&c->line);
	lg_buf_free(&c->data);
	lg_buf_free(&c->body);
	lg_buf_free(&c->text);
}

/* What must hold once an answer was read. */
static void
check_answer(provider_call *c)
{
	lg_buf		m;
	lg_error	err;
	lg_json_node *msg;

	CHECK(c->n_calls >= 0 && c->n_calls <= MAX_TOOL_CALLS);
	CHECK(memchr(c->finish, '\0', sizeof(c->finish)) != NULL);
	if (c->fail_status[0])
		CHECK(c->fail_msg[0] != '\0');
	/* the fuzzer's key never comes back in a message */
	CHECK(strstr(c->fail_msg, "sk-secret-key") == NULL);
	CHECK(strstr(c->fail_detail, "sk-secret-key") == NULL);
	CHECK(pieces.len == c->text.len);
	CHECK(c->text.len == 0 || memcmp(pieces.data, c->text.data, c->text.len) == 0);
	CHECK(c->n_prompt >= -1 && c->n_completion >= -1);

	lg_buf_init(&m);
	provider_answer_message(c, &m);
	msg = lg_json_parse(m.data, m.len, &err);
	CHECK(msg != NULL);
	CHECK(strcmp(lg_json_get_str(msg, "role"), "assistant") == 0);
	if (c->n_calls == 0)
	{
		const char *content = lg_json_get_str(msg, "content");

		CHECK(content != NULL);
		CHECK(lg_json_get(msg, "content")->str_len == c->text.len);
	}
	else
		CHECK(lg_json_get(msg, "tool_calls")->n == (size_t) c->n_calls);
	lg_json_node_free(msg);
	lg_buf_free(&m);
}

/* An event stream (status 200, text/event-stream) in chunks of at most chunk bytes, then its end. */
static void
feed_stream(provider_call *c, const char *in, size_t len, size_t chunk)
{
	c->http_status = 200;
	c->event_stream = true;
	/* libcurl hands the body over in pieces of any size; a copy each, so reads past it are caught */
	for (size_t off = 0; off < len; off += chunk)
	{
		size_t		n = len - off < chunk ? len - off : chunk;
		char	   *p = malloc(n);

		memcpy(p, in + off, n);
		if (provider_on_body(p, 1, n, c) != n)
			CHECK(c->fail_status[0] != '\0');
		free(p);
		if (c->fail_status[0])
			break;
	}
	provider_answer_end(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	serve_conn conn;
	serve_request r;
	provider_call c;
	const char *in;
	size_t		len;
	int			mode;
	size_t		chunk;

	if (size < 1)
		return 0;
	mode = data[0] % 3;
	chunk = (size_t) (data[0] / 3) + 1;
	in = (const char *) data + 1;
	len = size - 1;
	memset(&conn, 0, sizeof(conn));
	memset(&r, 0, sizeof(r));
	r.conn = &conn;
	lg_buf_init(&pieces);
	call_init(&c, &r);

	if (mode == 0)
	{
		provider_call whole;
		serve_request r2;
		lg_buf		pieces1;

		feed_stream(&c, in, len, chunk);
		check_answer(&c);
		/* the same stream in one piece reads the same: cutting it must not matter */
		pieces1 = pieces;
		lg_buf_init(&pieces);
		memset(&r2, 0, sizeof(r2));
		r2.conn = &conn;
		call_init(&whole, &r2);
		feed_stream(&whole, in, len, len ? len : 1);
		check_answer(&whole);
		CHECK(strcmp(whole.fail_status, c.fail_status) == 0);
		if (c.fail_status[0] == '\0')
		{
			CHECK(whole.text.len == c.text.len && whole.n_calls == c.n_calls);
			CHECK(c.text.len == 0 || memcmp(whole.text.data, c.text.data, c.text.len) == 0);
			CHECK(strcmp(whole.finish, c.finish) == 0);
			CHECK(whole.n_prompt == c.n_prompt && whole.n_completion == c.n_completion);
		}
		call_free(&whole);
		lg_buf_free(&pieces1);
	}
	else if (mode == 1)
	{
		provider_take_json(&c, in, len);
		check_answer(&c);
	}
	else
	{
		size_t		off = 0;

		while (off < len)
		{
			const char *nl = memchr(in + off, '\n', len - off);
			size_t		n = nl ? (size_t) (nl - in - off) + 1 : len - off;
			char	   *p = malloc(n);

			memcpy(p, in + off, n);
			CHECK(provider_on_header(p, 1, n, &c) == n);
			free(p);
			CHECK(c.retry_after_s == -1 || (isfinite(c.retry_after_s) && c.retry_after_s >= 0));
			CHECK(c.http_status == 0 || (c.http_status >= 100 && c.http_status <= 999));
			off += n;
		}
		/* the value alone, NUL-terminated, straight to the parser */
		{
			char	   *v = malloc(len + 1);
			double		s;

			memcpy(v, in, len);
			v[len] = '\0';
			s = provider_parse_retry_after(v, (time_t) 1767225600);
			CHECK(s == -1 || (isfinite(s) && s >= 0));
			free(v);
		}
	}
	call_free(&c);
	lg_buf_free(&pieces);
	return 0;
}
