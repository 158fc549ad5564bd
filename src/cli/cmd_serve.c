/*
 * cmd_serve.c — `llamagpu serve`: the engine server the Postgres extension
 * starts (see docs/architecture.md and docs/protocol.md).
 *
 * It listens on DIR/engine.sock, DIR being a directory only its owner can
 * open (0700).  The main thread polls the listening socket and every
 * connection, reads frames, and hands each request to a worker thread
 * (serve_request.c); generations go on to the model's scheduler thread
 * (serve_models.c).  A closed connection, a CANCEL frame or a passed
 * timeout_ms cancels requests, which their scheduler drops before its next
 * step.  SIGTERM or SIGINT stops it: requests are cancelled, the socket
 * removed.
 */
#include "cli.h"
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS 1024

serve_options serve_opts;

_Thread_local int serve_log_backend_pid;

static volatile sig_atomic_t stop_requested;
static int	wake_pipe[2] = {-1, -1};

/*
 * Log a line to stderr (the Postgres server log when run by the
 * extension), with the prefix every llamagpu log line has, and the backend
 * PID of the request this thread works for.  One fprintf per line: stderr
 * is unbuffered, so lines of different threads do not interleave.
 */
void
serve_log(int level, const char *fmt, ...)
{
	static const char *const names[] = {"ERROR", "WARNING", "INFO", "DEBUG"};
	char		line[1024];
	char		pid[40] = "";
	va_list		ap;

	if (level > serve_opts.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (serve_log_backend_pid > 0)
		snprintf(pid, sizeof(pid), " (backend PID %d)", serve_log_backend_pid);
	fprintf(stderr, "llamagpu: engine[%d] %s: %s%s\n", (int) getpid(), names[level], line, pid);
}

/* SIGTERM, SIGINT: leave the poll loop. */
static void
handle_stop(int sig)
{
	int			save = errno;
	ssize_t		rc;

	stop_requested = 1;
	rc = write(wake_pipe[1], "x", 1);
	(void) rc;
	errno = save;
}

/*
 * Send data[*off..len) without blocking, advancing *off by what the socket
 * took; false (and the connection marked closed) if the peer is gone.
 * Caller holds write_lock.
 */
static bool
send_some(serve_conn *c, const char *data, size_t len, size_t *off)
{
	while (*off < len)
	{
		ssize_t		n = send(c->fd, data + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n <= 0)
		{
			atomic_store(&c->closed, true);
			return false;
		}
		*off += (size_t) n;
	}
	return true;
}

/*
 * Queue a whole frame on the connection: what the socket takes now is sent
 * at once, the rest waits in the connection's output buffer for the poll
 * loop to flush (POLLOUT).  Sending never blocks, so a client that stops
 * reading cannot stall the scheduler thread that streams to every client;
 * one that lets SERVE_OUT_MAX bytes pile up is disconnected (its requests
 * are cancelled).  False if the peer is gone.
 */
bool
serve_conn_send(serve_conn *c, serve_frame *f)
{
	size_t		off = 0;
	bool		ok = true;
	bool		wake = false;

	if (!serve_frame_finish(f))
	{
		serve_log(SERVE_LOG_ERROR, "cannot build a frame (out of memory or too large)");
		return false;
	}
	if (atomic_load(&c->closed))
		return false;
	pthread_mutex_lock(&c->write_lock);
	/* frames already waiting go first */
	if (c->olen == 0)
		ok = send_some(c, f->data, f->len, &off);
	if (ok && off < f->len)
	{
		size_t		rest = f->len - off;

		if (c->olen + rest > SERVE_OUT_MAX)
		{
			serve_log(SERVE_LOG_WARNING, "a client read nothing of %zu bytes of replies; disconnecting it",
					  c->olen + rest);
			atomic_store(&c->closed, true);
			ok = false;
		}
		else
		{
			if (c->olen + rest > c->ocap)
			{
				size_t		cap = c->ocap ? c->ocap : 65536;
				char	   *p;

				while (cap < c->olen + rest)
					cap *= 2;
				p = realloc(c->obuf, cap);
				if (p == NULL)
				{
					atomic_store(&c->closed, true);
					pthread_mutex_unlock(&c->write_lock);
					return false;
				}
				c->obuf = p;
				c->ocap = cap;
			}
			memcpy(c->obuf + c->olen, f->data + off, rest);
			wake = c->olen == 0;
			c->olen += rest;
			atomic_store(&c->pending, true);
		}
	}
	pthread_mutex_unlock(&c->write_lock);
	if (wake)
	{
		ssize_t		rc = write(wake_pipe[1], "w", 1);	/* poll for POLLOUT now */

		(void) rc;
	}
	return ok;
}

/* Send what the output buffer holds, as far as the socket takes it; false if the peer is gone. */
static bool
conn_flush(serve_conn *c)
{
	size_t		off = 0;
	bool		ok = true;

	pthread_mutex_lock(&c->write_lock);
	ok = send_some(c, c->obuf, c->olen, &off);
	memmove(c->obuf, c->obuf + off, c->olen - off);
	c->olen -= off;
	atomic_store(&c->pending, c->olen > 0);
	pthread_mutex_unlock(&c->write_lock);
	return ok;
}

/* Drop a reference; the last one closes the socket. */
void
serve_conn_release(serve_conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	close(c->fd);
	pthread_mutex_destroy(&c->write_lock);
	free(c->rbuf);
	free(c->obuf);
	free(c);
}

/* Reply to HELLO, checking the client's protocol version. */
static bool
handle_hello(serve_conn *c, uint32_t id, const char *payload, size_t len)
{
	serve_fields fl;
	const char *v;
	serve_frame f = {0};
	bool		ok;

	if (!serve_fields_parse(payload, len, &fl))
		return false;
	v = serve_fields_get(&fl, "protocol");
	ok = v != NULL && atoi(v) == LG_PROTO_VERSION;
	serve_fields_free(&fl);
	serve_frame_begin(&f, ok ? LG_FRAME_HELLO : LG_FRAME_ERROR, id);
	if (ok)
	{
		serve_frame_fieldf(&f, "protocol", "%d", LG_PROTO_VERSION);
		serve_frame_field(&f, "server", "llamagpu");
		serve_frame_fieldf(&f, "pid", "%d", (int) getpid());
	}
	else
	{
		serve_frame_field(&f, "status", LG_WIRE_PROTOCOL);
		serve_frame_fieldf(&f, "message", "unsupported protocol version (this server speaks %d)",
						   LG_PROTO_VERSION);
	}
	serve_conn_send(c, &f);
	serve_frame_free(&f);
	c->hello = ok;
	return ok;
}

/* Handle one whole frame; false closes the connection. */
static bool
handle_frame(serve_conn *c, char type, uint32_t id, const char *payload, size_t len)
{
	serve_request *r;

	if (type == LG_FRAME_HELLO)
		return handle_hello(c, id, payload, len);
	if (!c->hello)
	{
		serve_log(SERVE_LOG_WARNING, "frame before HELLO; closing the connection");
		return false;
	}
	if (type == LG_FRAME_CANCEL)
	{
		serve_requests_cancel(c, id, false);
		return true;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->payload = malloc(len + 1)) == NULL)
	{
		free(r);
		serve_log(SERVE_LOG_ERROR, "out of memory for a request");
		return false;
	}
	memcpy(r->payload, payload, len);
	r->payload[len] = '\0';
	r->id = id;
	r->type = type;
	r->conn = c;
	if (!serve_fields_parse(r->payload, len, &r->fields))
	{
		serve_send_error(r, LG_WIRE_PROTOCOL, "malformed payload");
		free(r->payload);
		free(r);
		return false;
	}
	if (!serve_request_start(r))
	{
		serve_send_error(r, LG_WIRE_NOMEM, "cannot start a thread for the request");
		serve_fields_free(&r->fields);
		free(r->payload);
		free(r);
	}
	return true;
}

/* Read what is available and handle whole frames; false when the connection ends. */
static bool
conn_read(serve_conn *c)
{
	ssize_t		n;
	size_t		off = 0;

	if (c->rcap - c->rlen < 65536)
	{
		size_t		cap = c->rcap ? c->rcap * 2 : 131072;
		char	   *p = realloc(c->rbuf, cap);

		if (p == NULL)
			return false;
		c->rbuf = p;
		c->rcap = cap;
	}
	n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	c->rlen += (size_t) n;

	while (c->rlen - off >= LG_PROTO_HEADER_SIZE)
	{
		const unsigned char *h = (const unsigned char *) c->rbuf + off;
		uint32_t	len = ((uint32_t) h[0] << 24) | ((uint32_t) h[1] << 16) | ((uint32_t) h[2] << 8) | h[3];
		uint32_t	id = ((uint32_t) h[5] << 24) | ((uint32_t) h[6] << 16) | ((uint32_t) h[7] << 8) | h[8];

		if (len > LG_PROTO_MAX_PAYLOAD)
		{
			serve_log(SERVE_LOG_WARNING, "frame of %u bytes is too large; closing the connection", len);
			return false;
		}
		if (c->rlen - off < LG_PROTO_HEADER_SIZE + (size_t) len)
		{
			/* make room for the rest of a large frame */
			if (LG_PROTO_HEADER_SIZE + (size_t) len > c->rcap)
			{
				char	   *p = realloc(c->rbuf, LG_PROTO_HEADER_SIZE + (size_t) len + 65536);

				if (p == NULL)
					return false;
				c->rbuf = p;
				c->rcap = LG_PROTO_HEADER_SIZE + (size_t) len + 65536;
			}
			break;
		}
		if (!handle_frame(c, (char) h[4], id, c->rbuf + off + LG_PROTO_HEADER_SIZE, len))
			return false;
		off += LG_PROTO_HEADER_SIZE + len;
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	return true;
}

/* Create (or check) the socket directory: ours, mode 0700. */
static bool
prepare_socket_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
	{
		serve_log(SERVE_LOG_ERROR, "cannot create socket directory \"%s\": %s", dir, strerror(errno));
		return false;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
	{
		serve_log(SERVE_LOG_ERROR, "\"%s\" is not a directory", dir);
		return false;
	}
	if (st.st_uid != geteuid())
	{
		serve_log(SERVE_LOG_ERROR, "socket directory \"%s\" is not owned by the current user", dir);
		return false;
	}
	if ((st.st_mode & 0777) != 0700 && chmod(dir, 0700) != 0)
	{
		serve_log(SERVE_LOG_ERROR, "cannot chmod \"%s\": %s", dir, strerror(errno));
		return false;
	}
	return true;
}

/* Bind and listen on DIR/engine.sock; -1 on failure. */
static int
open_listener(const char *dir, char *path, size_t pathsize)
{
	struct sockaddr_un addr;
	int			fd;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if ((size_t) snprintf(path, pathsize, "%s/%s", dir, LG_PROTO_SOCKET_NAME) >= sizeof(addr.sun_path))
	{
		serve_log(SERVE_LOG_ERROR, "socket path \"%s\" is too long", path);
		return -1;
	}
	strcpy(addr.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *) &addr, sizeof(addr)) != 0 || listen(fd, 128) != 0)
	{
		serve_log(SERVE_LOG_ERROR, "cannot listen on \"%s\": %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	chmod(path, 0600);
	return fd;
}

/* The options of `llamagpu serve`. */
static void
usage(FILE *out)
{
	fprintf(out,
			"usage: llamagpu serve --socket-dir DIR [options]\n"
			"  --socket-dir DIR         listen on DIR/" LG_PROTO_SOCKET_NAME " (DIR is made mode 0700)\n"
			"  --model-dir DIR          directory of model files (informational)\n"
			"  --threads N              threads per loaded model (0: all CPUs)\n"
			"  --device DEV             where models compute: auto (a GPU if this build has GPU\n"
			"                           support and one is visible, else the CPU), cpu, cuda:N\n"
			"  --ctx-size N             positions per sequence at most (0: the model's, at most 4096)\n"
			"  --kv-cache-size MB       each loaded model's KV block pool (0: room for --max-seqs\n"
			"                           sequences of --ctx-size positions)\n"
			"  --kv-block-size N        positions per KV block (default 32)\n"
			"  --max-batch-tokens N     tokens per batched step (default 512)\n"
			"  --max-seqs N             generations running at once per model (default 64)\n"
			"  --max-queued N           generations waiting per model; more are refused with\n"
			"                           status busy (default 256)\n"
			"  --no-prefix-cache        do not share the KV blocks of common prompt prefixes\n"
			"  --grammar-cache N        compiled grammars and schemas kept for reuse (default 64;\n"
			"                           0: compile every request's anew)\n"
			"  --log-level LEVEL        error, warning, info or debug\n"
			"  --log-min-duration-ms N  log generations that took N ms or more (-1: none, the default)\n"
			"  --plugin NAME:SHA256:PATH  load an engine plugin (docs/plugins.md); repeatable\n"
			"  --debug-token-delay-ms N sleep N ms after each scheduler step (tests)\n");
}

/* Parse a non-negative int option; -1 if invalid. */
static int
parse_nonneg(const char *s)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 1000000000)
		return -1;
	return (int) v;
}

/* `llamagpu serve`: set up the socket, then poll until told to stop. */
int
cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket-dir", required_argument, NULL, 's'},
		{"model-dir", required_argument, NULL, 'm'},
		{"threads", required_argument, NULL, 't'},
		{"kv-cache-size", required_argument, NULL, 'k'},
		{"ctx-size", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"debug-token-delay-ms", required_argument, NULL, 'd'},
		{"max-batch-tokens", required_argument, NULL, 'B'},
		{"max-queued", required_argument, NULL, 'Q'},
		{"max-seqs", required_argument, NULL, 'S'},
		{"kv-block-size", required_argument, NULL, 'K'},
		{"no-prefix-cache", no_argument, NULL, 'P'},
		{"grammar-cache", required_argument, NULL, 'G'},
		{"device", required_argument, NULL, 'D'},
		{"log-min-duration-ms", required_argument, NULL, 'M'},
		{"plugin", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	static serve_conn *conns[MAX_CONNS];
	struct pollfd pfds[MAX_CONNS + 2];
	char		sockpath[1024];
	struct sigaction sa;
	int			nconns = 0;
	int			listen_fd;
	int			opt;

	serve_opts.log_level = SERVE_LOG_INFO;
	serve_opts.max_batch_tokens = 512;
	serve_opts.max_queued = 256;
	serve_opts.max_seqs = 64;
	serve_opts.kv_block_size = LG_KV_BLOCK_SIZE_DEFAULT;
	serve_opts.prefix_cache = true;
	serve_opts.grammar_cache = 64;
	serve_opts.device = "auto";
	serve_opts.log_min_duration_ms = -1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
	{
		int			v = 0;

		if (opt == 't' || opt == 'k' || opt == 'c' || opt == 'd' || opt == 'G')
		{
			v = parse_nonneg(optarg);
			if (v < 0)
				return cli_fail("serve", 2, "invalid value \"%s\" for --%s", optarg,
								opt == 't' ? "threads" : opt == 'k' ? "kv-cache-size" :
								opt == 'c' ? "ctx-size" : opt == 'G' ? "grammar-cache" :
								"debug-token-delay-ms");
		}
		if (opt == 'B' || opt == 'Q' || opt == 'S' || opt == 'K')
		{
			/* these have no "0 = default": a count of at least 1 */
			v = parse_nonneg(optarg);
			if (v < 1)
				return cli_fail("serve", 2, "invalid value \"%s\" for --%s (a positive integer)", optarg,
								opt == 'B' ? "max-batch-tokens" : opt == 'Q' ? "max-queued" :
								opt == 'S' ? "max-seqs" : "kv-block-size");
		}
		switch (opt)
		{
			case 's': serve_opts.socket_dir = optarg; break;
			case 'm': serve_opts.model_dir = optarg; break;
			case 't': serve_opts.threads = v; break;
			case 'k': serve_opts.kv_cache_mb = v; break;
			case 'c': serve_opts.ctx_size = v; break;
			case 'd': serve_opts.token_delay_ms = v; break;
			case 'B': serve_opts.max_batch_tokens = v; break;
			case 'Q': serve_opts.max_queued = v; break;
			case 'S': serve_opts.max_seqs = v; break;
			case 'K': serve_opts.kv_block_size = v; break;
			case 'P': serve_opts.prefix_cache = false; break;
			case 'G': serve_opts.grammar_cache = v; break;
			case 'M':
				/* -1 turns it off, as Postgres' log_min_duration_statement */
				if (strcmp(optarg, "-1") == 0)
					serve_opts.log_min_duration_ms = -1;
				else if ((serve_opts.log_min_duration_ms = parse_nonneg(optarg)) < 0)
					return cli_fail("serve", 2, "invalid value \"%s\" for --log-min-duration-ms", optarg);
				break;
			case 'L':
				{
					char		perr[512];

					if (!serve_plugins_add(optarg, perr, sizeof(perr)))
						return cli_fail("serve", 2, "%s", perr);
				}
				break;
			case 'D':
				{
					/* checked now, so a bad setting fails at start, not at the first model load */
					lg_error	derr;
					lg_backend *be = lg_backend_open(optarg, 1, &derr);

					if (be == NULL)
						return cli_fail("serve", 2, "--device %s: %s", optarg, derr.msg);
					be->free(be);
					serve_opts.device = optarg;
				}
				break;
			case 'l':
				if (strcmp(optarg, "error") == 0)
					serve_opts.log_level = SERVE_LOG_ERROR;
				else if (strcmp(optarg, "warning") == 0)
					serve_opts.log_level = SERVE_LOG_WARNING;
				else if (strcmp(optarg, "info") == 0)
					serve_opts.log_level = SERVE_LOG_INFO;
				else if (strcmp(optarg, "debug") == 0)
					serve_opts.log_level = SERVE_LOG_DEBUG;
				else
					return cli_fail("serve", 2, "invalid log level \"%s\"", optarg);
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
		}
	}
	if (serve_opts.socket_dir == NULL || optind < argc)
	{
		usage(stderr);
		return 2;
	}

	if (pipe(wake_pipe) != 0)
		return cli_fail("serve", 1, "cannot create a pipe: %s", strerror(errno));
	fcntl(wake_pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(wake_pipe[1], F_SETFD, FD_CLOEXEC);
	/* it is drained by the poll loop and written from any thread: never block on it */
	fcntl(wake_pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	umask(077);
	serve_metrics_init();
	serve_plugins_load();
	if (!prepare_socket_dir(serve_opts.socket_dir))
		return 1;
	listen_fd = open_listener(serve_opts.socket_dir, sockpath, sizeof(sockpath));
	if (listen_fd < 0)
		return 1;
	serve_log(SERVE_LOG_INFO, "started, listening on %s (device %s, threads %d, kv cache %d MB per model, "
			  "batch %d tokens, %d sequences, queue %d, blocks of %d, prefix cache %s)",
			  sockpath, serve_opts.device, serve_opts.threads, serve_opts.kv_cache_mb, serve_opts.max_batch_tokens,
			  serve_opts.max_seqs, serve_opts.max_queued, serve_opts.kv_block_size,
			  serve_opts.prefix_cache ? "on" : "off");

	while (!stop_requested)
	{
		int			n;
		int			npolled = nconns;

		pfds[0].fd = wake_pipe[0];
		pfds[0].events = POLLIN;
		pfds[1].fd = listen_fd;
		pfds[1].events = nconns < MAX_CONNS ? POLLIN : 0;
		for (int i = 0; i < nconns; i++)
		{
			pfds[i + 2].fd = conns[i]->fd;
			pfds[i + 2].events = POLLIN | POLLRDHUP | (atomic_load(&conns[i]->pending) ? POLLOUT : 0);
		}
		/* a short timeout: deadlines of queued requests are checked here */
		n = poll(pfds, (nfds_t) nconns + 2, 100);
		serve_requests_expire();
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			serve_log(SERVE_LOG_ERROR, "poll failed: %s", strerror(errno));
			break;
		}
		if (pfds[0].revents & POLLIN)
		{
			char		drain[256];

			while (read(wake_pipe[0], drain, sizeof(drain)) > 0)
				;				/* a wake-up: the next poll includes POLLOUT */
		}
		if (pfds[1].revents & POLLIN)
		{
			int			fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
			{
				serve_conn *c = calloc(1, sizeof(*c));

				if (c == NULL)
					close(fd);
				else
				{
					c->fd = fd;
					pthread_mutex_init(&c->write_lock, NULL);
					atomic_init(&c->refs, 1);
					atomic_init(&c->closed, false);
					atomic_init(&c->pending, false);
					conns[nconns++] = c;
				}
			}
		}
		/* connections accepted just now were not polled: start below them */
		for (int i = npolled - 1; i >= 0; i--)
		{
			short		rev = pfds[i + 2].revents;
			serve_conn *c = conns[i];

			/* closed by a failed send, or for not reading its replies */
			bool		gone = atomic_load(&c->closed);

			if (!gone && (rev & POLLOUT))
				gone = !conn_flush(c);
			if (!gone && (rev & POLLIN))
				gone = !conn_read(c) || (rev & (POLLHUP | POLLERR));
			else if (!gone)
				gone = (rev & (POLLHUP | POLLERR | POLLRDHUP)) != 0;
			if (!gone)
				continue;
			/* the peer closed (or broke) the connection: stop its requests */
			atomic_store(&c->closed, true);
			serve_requests_cancel(c, 0, true);
			shutdown(c->fd, SHUT_RDWR);
			serve_conn_release(c);
			/* keep the unpolled ones after the polled ones */
			conns[i] = conns[npolled - 1];
			pfds[i + 2] = pfds[npolled + 1];
			conns[npolled - 1] = conns[nconns - 1];
			npolled--;
			nconns--;
		}
	}

	serve_log(SERVE_LOG_INFO, "stopping: %d requests in flight are cancelled", serve_requests_running());
	serve_requests_cancel_all();
	close(listen_fd);
	unlink(sockpath);
	/* give the schedulers a moment to end their requests */
	for (int i = 0; i < 200 && serve_requests_running() > 0; i++)
		usleep(10000);
	serve_grammar_cache_clear();
	return 0;
}
