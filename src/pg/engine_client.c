/*
 * engine_client.c — a backend's connection to the engine: framed messages
 * over the Unix socket (docs/protocol.md).
 *
 * Every wait is on a WaitEventSet holding the process latch, the engine
 * socket and postmaster death, followed by CHECK_FOR_INTERRUPTS(), so
 * statement_timeout and pg_cancel_backend end the wait at once; the client
 * connection is checked every CLIENT_CHECK_INTERVAL_MS.  The ERROR that follows
 * resets the memory context the connection lives in; its reset callback
 * closes the socket, and the engine cancels the request when it sees the
 * connection close.
 */
#include "llamagpu.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

/*
 * From libpq/libpq.h, which we cannot include: it pulls in libpq-be.h and
 * with it the GSSAPI headers, which a PGXS build need not have.
 */
extern bool pq_check_connection(void);

/* How often a waiting backend checks that its client is still there. */
#define CLIENT_CHECK_INTERVAL_MS 200

struct EngineConn
{
	pgsocket	sock;
	WaitEventSet *wes;
	int			sock_pos;		/* position of the engine socket in wes */
	uint32		next_id;
	bool		write_partial;	/* a frame was cut short: the stream is unusable */
	TimestampTz client_checked; /* when the client connection was last checked */
	char	   *rbuf;
	size_t		rlen;
	size_t		rcap;
	MemoryContext cxt;
	MemoryContextCallback cb;
};

/* Close the socket and free the wait set (also on error, via the reset callback). */
static void
engine_conn_cleanup(void *arg)
{
	EngineConn *conn = arg;

	if (conn->wes)
	{
		FreeWaitEventSet(conn->wes);
		conn->wes = NULL;
	}
	if (conn->sock != PGINVALID_SOCKET)
	{
		close(conn->sock);
		conn->sock = PGINVALID_SOCKET;
	}
}

/* Close the connection now (the engine takes it as the end of our requests). */
void
EngineClose(EngineConn *conn)
{
	engine_conn_cleanup(conn);
}

/* Append "key\0value\0". */
void
EngineField(StringInfo buf, const char *key, const char *value)
{
	appendBinaryStringInfo(buf, key, strlen(key) + 1);
	appendBinaryStringInfo(buf, value, strlen(value) + 1);
}

/* Append an integer field. */
void
EngineFieldInt(StringInfo buf, const char *key, int64 value)
{
	char		num[32];

	snprintf(num, sizeof(num), INT64_FORMAT, value);
	EngineField(buf, key, num);
}

/* Append a float field, exactly (17 significant digits). */
void
EngineFieldFloat(StringInfo buf, const char *key, double value)
{
	char		num[64];

	snprintf(num, sizeof(num), "%.17g", value);
	EngineField(buf, key, num);
}

/* Walk a payload of fields; call fn for each field named key. */
void
EngineFrameForEach(EngineFrame *frame, const char *key,
				   void (*fn) (const char *value, void *arg), void *arg)
{
	const char *p = frame->payload.data;
	const char *end = p + frame->payload.len;

	while (p < end)
	{
		const char *k = p;
		const char *v;

		p += strnlen(p, end - p) + 1;
		if (p >= end)
			break;
		v = p;
		p += strnlen(p, end - p) + 1;
		if (p > end)
			break;
		if (strcmp(k, key) == 0)
			fn(v, arg);
	}
}

/* EngineFrameForEach callback: remember the first value. */
static void
first_value(const char *value, void *arg)
{
	const char **out = arg;

	if (*out == NULL)
		*out = value;
}

/* The first value of key in the frame, or NULL. */
const char *
EngineFrameGet(EngineFrame *frame, const char *key)
{
	const char *value = NULL;

	/* the payload is NUL-terminated by StringInfo, so a last field is safe */
	EngineFrameForEach(frame, key, first_value, &value);
	return value;
}

/* Write all of buf to the socket, waiting on the latch when it is full. */
static void
engine_write(EngineConn *conn, const char *data, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = send(conn->sock, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0)
		{
			data += n;
			len -= n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		{
			/* an interrupt here leaves half a frame behind */
			conn->write_partial = true;
			(void) WaitLatchOrSocket(MyLatch,
									 WL_LATCH_SET | WL_SOCKET_WRITEABLE | WL_EXIT_ON_PM_DEATH,
									 conn->sock, -1, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		EngineReportLost();
	}
	conn->write_partial = false;
}

/* Send one frame: header, then payload. */
static void
engine_send_frame(EngineConn *conn, char type, uint32 id, const char *payload, size_t len)
{
	unsigned char hdr[LG_PROTO_HEADER_SIZE];

	if (len > LG_PROTO_MAX_PAYLOAD)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("llamagpu request is too large"),
				 errdetail("The request has %zu bytes, the limit is %u.", len, LG_PROTO_MAX_PAYLOAD)));
	hdr[0] = (unsigned char) (len >> 24);
	hdr[1] = (unsigned char) (len >> 16);
	hdr[2] = (unsigned char) (len >> 8);
	hdr[3] = (unsigned char) len;
	hdr[4] = (unsigned char) type;
	hdr[5] = (unsigned char) (id >> 24);
	hdr[6] = (unsigned char) (id >> 16);
	hdr[7] = (unsigned char) (id >> 8);
	hdr[8] = (unsigned char) id;
	engine_write(conn, (const char *) hdr, sizeof(hdr));
	if (len > 0)
		engine_write(conn, payload, len);
}

/*
 * Ask the engine to stop request id, without waiting: used while an ERROR
 * unwinds, so it must neither block nor raise.  Closing the connection
 * cancels everything anyway; this only makes it explicit and immediate.
 */
void
EngineCancelNoWait(EngineConn *conn, uint32 id)
{
	unsigned char hdr[LG_PROTO_HEADER_SIZE] = {0};

	if (conn->sock == PGINVALID_SOCKET || conn->write_partial)
		return;
	hdr[4] = (unsigned char) LG_FRAME_CANCEL;
	hdr[5] = (unsigned char) (id >> 24);
	hdr[6] = (unsigned char) (id >> 16);
	hdr[7] = (unsigned char) (id >> 8);
	hdr[8] = (unsigned char) id;
	if (send(conn->sock, hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof(hdr))
		conn->write_partial = true;
}

/* Send a request with the next id; returns the id. */
uint32
EngineSendRequest(EngineConn *conn, char type, StringInfo fields)
{
	uint32		id = conn->next_id++;

	engine_send_frame(conn, type, id, fields ? fields->data : NULL, fields ? fields->len : 0);
	return id;
}

/* A whole frame from the buffer, if there is one. */
static bool
take_frame(EngineConn *conn, EngineFrame *frame)
{
	const unsigned char *h = (const unsigned char *) conn->rbuf;
	uint32		len;

	if (conn->rlen < LG_PROTO_HEADER_SIZE)
		return false;
	len = ((uint32) h[0] << 24) | ((uint32) h[1] << 16) | ((uint32) h[2] << 8) | h[3];
	if (len > LG_PROTO_MAX_PAYLOAD)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid frame from the llamagpu engine"),
				 errdetail("A frame announced %u bytes.", len)));
	if (conn->rlen < LG_PROTO_HEADER_SIZE + (size_t) len)
		return false;
	frame->type = (char) h[4];
	frame->id = ((uint32) h[5] << 24) | ((uint32) h[6] << 16) | ((uint32) h[7] << 8) | h[8];
	initStringInfo(&frame->payload);
	appendBinaryStringInfo(&frame->payload, conn->rbuf + LG_PROTO_HEADER_SIZE, len);
	memmove(conn->rbuf, conn->rbuf + LG_PROTO_HEADER_SIZE + len,
			conn->rlen - LG_PROTO_HEADER_SIZE - len);
	conn->rlen -= LG_PROTO_HEADER_SIZE + len;
	return true;
}

/* Wait for the next frame from the engine. */
void
EngineReadFrame(EngineConn *conn, EngineFrame *frame)
{
	(void) EngineReadFrameTimeout(conn, frame, -1);
}

/* Wait up to timeout_ms (-1: forever) for the next frame; false on timeout. */
bool
EngineReadFrameTimeout(EngineConn *conn, EngineFrame *frame, int timeout_ms)
{
	TimestampTz deadline = timeout_ms >= 0 ?
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms) : 0;

	for (;;)
	{
		WaitEvent	event;
		ssize_t		n;
		long		wait_ms = CLIENT_CHECK_INTERVAL_MS;

		if (take_frame(conn, frame))
			return true;
		if (timeout_ms >= 0)
		{
			long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

			if (left <= 0)
				return false;
			wait_ms = Min(wait_ms, left);
		}

		if (conn->rcap - conn->rlen < 8192)
		{
			size_t		cap = Max(conn->rcap * 2, 65536);

			conn->rbuf = repalloc(conn->rbuf, cap);
			conn->rcap = cap;
		}
		n = recv(conn->sock, conn->rbuf + conn->rlen, conn->rcap - conn->rlen, MSG_DONTWAIT);
		if (n > 0)
		{
			conn->rlen += n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			EngineReportLost();

		/* the client is gone: stop now, as client_connection_check_interval would */
		if (MyBackendType == B_BACKEND &&
			TimestampDifferenceExceeds(conn->client_checked, GetCurrentTimestamp(),
									   CLIENT_CHECK_INTERVAL_MS))
		{
			conn->client_checked = GetCurrentTimestamp();
			if (!pq_check_connection())
			{
				ClientConnectionLost = 1;
				InterruptPending = 1;
				CHECK_FOR_INTERRUPTS();
			}
		}
		if (WaitEventSetWait(conn->wes, wait_ms, &event, 1, PG_WAIT_EXTENSION) < 1)
			continue;
		if (event.events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/* Try to connect once; false (errno set) if the engine is not there. */
static bool
try_connect(EngineConn *conn)
{
	struct sockaddr_un addr;
	const char *path = LlamagpuSocketPath();

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr.sun_path))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("llamagpu socket path \"%s\" is too long", path),
				 errhint("Set llamagpu.socket_directory to a shorter path.")));
	strcpy(addr.sun_path, path);
	conn->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (conn->sock == PGINVALID_SOCKET)
		ereport(ERROR,
				(errcode_for_socket_access(),
				 errmsg("could not create socket: %m")));
	if (connect(conn->sock, (struct sockaddr *) &addr, sizeof(addr)) == 0)
		return true;
	{
		int			save = errno;

		close(conn->sock);
		conn->sock = PGINVALID_SOCKET;
		errno = save;
	}
	return false;
}

/* Connect to the engine and say HELLO (see llamagpu.h). */
EngineConn *
EngineConnect(int wait_ms, bool missing_ok)
{
	EngineConn *conn;
	TimestampTz deadline;
	StringInfoData hello;
	EngineFrame frame;
	const char *v;

	if (llamagpu_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("llamagpu must be loaded via shared_preload_libraries"),
				 errhint("Add llamagpu to shared_preload_libraries in postgresql.conf and restart the server.")));

	conn = palloc0(sizeof(EngineConn));
	conn->sock = PGINVALID_SOCKET;
	conn->next_id = 1;
	conn->cxt = CurrentMemoryContext;
	conn->cb.func = engine_conn_cleanup;
	conn->cb.arg = conn;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &conn->cb);

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	while (!try_connect(conn))
	{
		int			save = errno;

		if (GetCurrentTimestamp() >= deadline)
		{
			if (missing_ok)
				return NULL;
			errno = save;
			ereport(ERROR,
					(errcode(ERRCODE_CANNOT_CONNECT_NOW),
					 errmsg("llamagpu engine is not available"),
					 errdetail("Could not connect to \"%s\": %m.", LlamagpuSocketPath()),
					 errhint("The llamagpu supervisor starts the engine; see the server log for why it is not running.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 20, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (!pg_set_noblock(conn->sock))
		ereport(ERROR,
				(errcode_for_socket_access(),
				 errmsg("could not set socket to nonblocking mode: %m")));

	conn->rcap = 65536;
	conn->rbuf = palloc(conn->rcap);
	conn->wes = CreateWaitEventSet(CurrentMemoryContext, 3);
	AddWaitEventToSet(conn->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(conn->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	conn->sock_pos = AddWaitEventToSet(conn->wes, WL_SOCKET_READABLE, conn->sock, NULL, NULL);

	initStringInfo(&hello);
	EngineFieldInt(&hello, "protocol", LG_PROTO_VERSION);
	EngineField(&hello, "client", "postgres");
	engine_send_frame(conn, LG_FRAME_HELLO, 0, hello.data, hello.len);
	EngineReadFrame(conn, &frame);
	if (frame.type == LG_FRAME_ERROR)
		EngineReportError(&frame);
	v = EngineFrameGet(&frame, "protocol");
	if (frame.type != LG_FRAME_HELLO || v == NULL || atoi(v) != LG_PROTO_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("llamagpu engine speaks another protocol version"),
				 errhint("Install the llamagpu executable from the same build as the extension.")));
	return conn;
}

/* Send a request and wait for its RESULT. */
void
EngineCall(EngineConn *conn, char type, StringInfo fields, EngineFrame *result)
{
	uint32		id = EngineSendRequest(conn, type, fields);

	for (;;)
	{
		EngineReadFrame(conn, result);
		if (result->id != id)
			continue;
		if (result->type == LG_FRAME_ERROR)
			EngineReportError(result);
		if (result->type == LG_FRAME_RESULT)
			return;
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unexpected frame type %d from the llamagpu engine", result->type)));
	}
}
