/*
 * serve_protocol.h — the framed protocol between Postgres backends and the
 * engine server (`llamagpu serve`).  Plain C, no dependencies: included by
 * the server (src/cli/serve_*.c) and by the extension (src/pg/).
 *
 * Every frame is a 9-byte header followed by the payload:
 *
 *   uint32  payload length (network byte order), at most LG_PROTO_MAX_PAYLOAD
 *   uint8   frame type (LG_FRAME_*)
 *   uint32  request id (network byte order), chosen by the client; 0 for
 *           connection-level frames (HELLO)
 *
 * Payloads of requests and of RESULT/END/ERROR frames are a list of fields,
 * each "key\0value\0" (keys and values are UTF-8 without NUL bytes; a key may
 * repeat, e.g. "stop").  A PIECE payload is raw UTF-8 text.  See
 * docs/protocol.md.
 */
#ifndef LG_SERVE_PROTOCOL_H
#define LG_SERVE_PROTOCOL_H

#define LG_PROTO_VERSION		1
#define LG_PROTO_HEADER_SIZE	9
#define LG_PROTO_MAX_PAYLOAD	(64u * 1024u * 1024u)
#define LG_PROTO_SOCKET_NAME	"engine.sock"

/* client -> server */
#define LG_FRAME_HELLO			'H'	/* both ways: protocol version handshake */
#define LG_FRAME_GENERATE		'G'
#define LG_FRAME_TOKENIZE		'T'
#define LG_FRAME_DETOKENIZE		'D'
#define LG_FRAME_INSPECT		'I'	/* read a GGUF file's header */
#define LG_FRAME_LOAD			'L'
#define LG_FRAME_UNLOAD			'U'
#define LG_FRAME_STATUS			'S'
#define LG_FRAME_CANCEL			'C'	/* stop request <id>; no payload, no reply */
#define LG_FRAME_EMBED			'B'	/* embed inputs: one RESULT with a vector per input */

/* server -> client */
#define LG_FRAME_PIECE			'P'	/* generated text, streamed */
#define LG_FRAME_END			'E'	/* generation finished: finish, n_prompt, n_gen */
#define LG_FRAME_RESULT			'R'	/* answer to a non-streaming request */
#define LG_FRAME_ERROR			'X'	/* request failed: status, message */

/*
 * Values of the "status" field of ERROR frames: the engine's lg_status
 * names, plus conditions of the server itself.  The extension maps them to
 * SQLSTATEs in src/pg/errors.c.
 */
#define LG_WIRE_IO				"io"
#define LG_WIRE_FORMAT			"format"
#define LG_WIRE_UNSUPPORTED		"unsupported"
#define LG_WIRE_NOMEM			"nomem"
#define LG_WIRE_ARG				"arg"
#define LG_WIRE_RANGE			"range"
#define LG_WIRE_CANCELLED		"cancelled"
#define LG_WIRE_INTERNAL		"internal"
#define LG_WIRE_CONTEXT			"context"	/* prompt does not fit the context */
#define LG_WIRE_TIMEOUT			"timeout"	/* request timeout reached */
#define LG_WIRE_PROTOCOL		"protocol"	/* malformed frame or field */
#define LG_WIRE_NOT_FOUND		"not_found" /* model not loaded (unload) */
#define LG_WIRE_BUSY			"busy"		/* the wait queue is full (max_queued) */
#define LG_WIRE_GRAMMAR			"grammar"	/* invalid grammar or schema, or a grammar dead end */
#define LG_WIRE_TEMPLATE		"template"	/* chat template missing, unparsable, or it raised */
#define LG_WIRE_PLUGIN			"plugin"	/* engine plugin not loaded, or it refused or failed the request */

/* a remote model's provider (src/cli/serve_provider.c, docs/models.md, "Remote providers") */
#define LG_WIRE_REMOTE_AUTH			"remote_auth"		/* HTTP 401/403: the API key was refused */
#define LG_WIRE_REMOTE_RATE_LIMIT	"remote_rate_limit"	/* HTTP 429, after the retries */
#define LG_WIRE_REMOTE_UNAVAILABLE	"remote_unavailable"	/* unreachable, 5xx after the retries, an error mid-answer */
#define LG_WIRE_REMOTE_NOT_FOUND	"remote_not_found"	/* HTTP 404: wrong base_url or model */
#define LG_WIRE_REMOTE_REJECTED		"remote_rejected"	/* another 4xx: the provider refused the request */
#define LG_WIRE_REMOTE_PROTOCOL		"remote_protocol"	/* a malformed answer (SSE, JSON) */
#define LG_WIRE_REMOTE_UNSUPPORTED	"remote_unsupported"	/* a setting a remote model cannot take (grammar, logit_bias) */

#endif							/* LG_SERVE_PROTOCOL_H */
