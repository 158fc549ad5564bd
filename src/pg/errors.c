/*
 * errors.c — engine statuses to SQLSTATEs, in one table.
 *
 * The engine reports failures as an ERROR frame with a status (an lg_status
 * name or a server condition, see serve_protocol.h) and a one-line message;
 * here each status gets its SQLSTATE, a message in Postgres style and a hint.
 * The engine's own message becomes the detail.
 */
#include "llamagpu.h"

#include "utils/elog.h"

/* statuses of structured output (docs/protocol.md); serve_protocol.h may define them too */
#ifndef LG_WIRE_GRAMMAR
#define LG_WIRE_GRAMMAR			"grammar"
#endif
#ifndef LG_WIRE_PLUGIN
#define LG_WIRE_PLUGIN			"plugin"
#endif
#ifndef LG_WIRE_TEMPLATE
#define LG_WIRE_TEMPLATE		"template"
#endif

typedef struct EngineErrorMap
{
	const char *status;			/* LG_WIRE_* */
	int			sqlstate;
	const char *message;
	const char *hint;
} EngineErrorMap;

static const EngineErrorMap engine_errors[] = {
	{LG_WIRE_IO, ERRCODE_IO_ERROR,
		"could not read model file",
	"Check that the file exists and that the database server's operating system user can read it."},
	{LG_WIRE_FORMAT, ERRCODE_INVALID_BINARY_REPRESENTATION,
		"invalid model file",
	"The file must be a GGUF model file (version 2 or 3)."},
	{LG_WIRE_UNSUPPORTED, ERRCODE_FEATURE_NOT_SUPPORTED,
		"model is not supported by llamagpu",
	"llamagpu runs LLaMA-family models (llama, mistral, qwen2) in GGUF format."},
	{LG_WIRE_NOMEM, ERRCODE_OUT_OF_MEMORY,
		"out of memory in the llamagpu engine",
	"Lower llamagpu.context_size or raise llamagpu.kv_cache_size."},
	{LG_WIRE_ARG, ERRCODE_INVALID_PARAMETER_VALUE,
		"invalid generation parameter",
	"See the SQL reference in the llamagpu README for valid values."},
	{LG_WIRE_RANGE, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
		"value out of range for the model",
	"Token ids must be between 0 and the vocabulary size minus one."},
	{LG_WIRE_CANCELLED, ERRCODE_QUERY_CANCELED,
		"llamagpu request was cancelled",
	NULL},
	{LG_WIRE_INTERNAL, ERRCODE_INTERNAL_ERROR,
		"internal error in the llamagpu engine",
	"See the server log for the engine's messages."},
	{LG_WIRE_CONTEXT, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
		"prompt is too long for the model's context",
	"Shorten the prompt, or raise the model's context_size option or llamagpu.context_size."},
	{LG_WIRE_TIMEOUT, ERRCODE_QUERY_CANCELED,
		"llamagpu request timed out",
	"Raise llamagpu.request_timeout or lower max_tokens."},
	{LG_WIRE_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
		"protocol violation between llamagpu and its engine",
	"Install the llamagpu executable from the same build as the extension."},
	{LG_WIRE_NOT_FOUND, ERRCODE_UNDEFINED_OBJECT,
		"model is not loaded",
	NULL},
	{LG_WIRE_BUSY, ERRCODE_INSUFFICIENT_RESOURCES,
		"llamagpu engine is busy",
	"Retry later, or raise llamagpu.max_queued_requests."},
	{LG_WIRE_GRAMMAR, ERRCODE_INVALID_PARAMETER_VALUE,
		"invalid grammar or JSON schema",
	"See docs/structured-output.md for the grammar syntax and the JSON Schema keywords llamagpu enforces."},
	{LG_WIRE_PLUGIN, ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
		"engine plugin failed",
	"See llamagpu.llm_plugins for the engine plugins and their state, and docs/plugins.md."},
	{LG_WIRE_TEMPLATE, ERRCODE_INVALID_PARAMETER_VALUE,
		"chat template failed",
	"Check the messages against what the model's chat template expects, or give another template with the option \"chat_template\"."},
	/* remote models (docs/models.md, "Remote providers"): the provider's own message is the detail */
	{LG_WIRE_REMOTE_AUTH, ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
		"remote model provider refused the API key",
	"Check the secret named by the model's api_key_secret in llamagpu.llm_secrets."},
	{LG_WIRE_REMOTE_RATE_LIMIT, ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
		"remote model provider rate limit exceeded",
	"Retry later, or raise the model's option \"max_retries\"."},
	{LG_WIRE_REMOTE_UNAVAILABLE, ERRCODE_CONNECTION_FAILURE,
		"remote model provider is unavailable",
	"Check the model's base_url and that the provider is running; failures before any output are retried (option \"max_retries\")."},
	{LG_WIRE_REMOTE_NOT_FOUND, ERRCODE_UNDEFINED_OBJECT,
		"remote model or endpoint not found",
	"Check the model's base_url and remote_model in llamagpu.llm_models."},
	{LG_WIRE_REMOTE_REJECTED, ERRCODE_INVALID_PARAMETER_VALUE,
		"remote model provider rejected the request",
	"The detail is the provider's message."},
	{LG_WIRE_REMOTE_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
		"invalid answer from the remote model provider",
	"The endpoint must speak the OpenAI API (/v1/completions, /v1/chat/completions)."},
	{LG_WIRE_REMOTE_UNSUPPORTED, ERRCODE_FEATURE_NOT_SUPPORTED,
		"feature not available for a remote model",
	NULL},
};

/*
 * For a GENERATE request with a grammar, a JSON schema or tools, an
 * unsupported status is about them: the model was checked at registration.
 */
static const EngineErrorMap constrained_unsupported = {
	LG_WIRE_UNSUPPORTED, ERRCODE_FEATURE_NOT_SUPPORTED,
	"JSON schema or grammar uses a feature llamagpu cannot enforce",
	"llamagpu never ignores a keyword it cannot enforce: remove or rewrite the one named, or constrain less."
};

/* The engine's one-line message as a detail sentence. */
static char *
as_sentence(const char *message)
{
	size_t		len;
	char	   *s;

	if (message == NULL || message[0] == '\0')
		return NULL;
	len = strlen(message);
	s = psprintf("%s%s", message, message[len - 1] == '.' ? "" : ".");
	s[0] = pg_toupper((unsigned char) s[0]);
	return s;
}

/* The table entry for an ERROR frame's status; NULL if unknown. */
static const EngineErrorMap *
error_map(const char *status, bool constrained)
{
	if (constrained && status && strcmp(status, LG_WIRE_UNSUPPORTED) == 0)
		return &constrained_unsupported;
	for (int i = 0; i < lengthof(engine_errors); i++)
		if (status && strcmp(status, engine_errors[i].status) == 0)
			return &engine_errors[i];
	return NULL;
}

/*
 * The detail of an ERROR frame: the engine's message, then its detail field
 * (where the problem is: a line and column, a JSON Pointer), as sentences.
 */
static char *
frame_detail(EngineFrame *frame)
{
	const char *m = EngineFrameGet(frame, "message");
	const char *d = EngineFrameGet(frame, "detail");
	char	   *message = as_sentence(m);

	/* the engine's message often names the place already */
	if (d == NULL || d[0] == '\0' || (m && strstr(m, d)))
		return message;
	if (message == NULL)
		return as_sentence(d);
	return psprintf("%s %s", message, as_sentence(d));
}

/*
 * An ERROR frame as SQLSTATE and one line of text ("message: detail"), for
 * callers that record a failure instead of raising it (table jobs).
 */
char *
EngineGenerateErrorText(EngineFrame *frame, bool constrained, int *sqlstate)
{
	const char *status = EngineFrameGet(frame, "status");
	const char *message = EngineFrameGet(frame, "message");
	const char *detail = EngineFrameGet(frame, "detail");
	const EngineErrorMap *map = error_map(status, constrained);

	*sqlstate = map ? map->sqlstate : ERRCODE_INTERNAL_ERROR;
	if (detail && message && strstr(message, detail))
		detail = NULL;
	return psprintf("%s%s%s%s%s",
					map ? map->message : "llamagpu engine failed",
					message && message[0] ? ": " : "",
					message ? message : "",
					detail && detail[0] ? " " : "",
					detail ? detail : "");
}

/* EngineGenerateErrorText for other requests. */
char *
EngineErrorText(EngineFrame *frame, int *sqlstate)
{
	return EngineGenerateErrorText(frame, false, sqlstate);
}

/*
 * Raise the ERROR an engine ERROR frame describes: the table's message, the
 * engine's message and detail as the detail, the engine's hint if it sent
 * one (it knows the problem best), else the table's.
 */
void
EngineReportGenerateError(EngineFrame *frame, bool constrained)
{
	const char *status = EngineFrameGet(frame, "status");
	const char *detail = frame_detail(frame);
	const char *hint = as_sentence(EngineFrameGet(frame, "hint"));
	const EngineErrorMap *map = error_map(status, constrained);

	if (map == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("llamagpu engine failed with unknown status \"%s\"", status ? status : ""),
				 detail ? errdetail("%s", detail) : 0,
				 hint ? errhint("%s", hint) : 0));
	if (hint == NULL)
		hint = map->hint;
	ereport(ERROR,
			(errcode(map->sqlstate),
			 errmsg("%s", map->message),
			 detail ? errdetail("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/* Raise the ERROR an engine ERROR frame describes. */
void
EngineReportError(EngineFrame *frame)
{
	EngineReportGenerateError(frame, false);
}

/* The engine closed the connection mid-request: it crashed or was stopped. */
void
EngineReportLost(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYSTEM_ERROR),
			 errmsg("llamagpu engine terminated while processing the request"),
			 errdetail("The connection to the engine was lost."),
			 errhint("The supervisor restarts the engine; retry the statement.  See the server log for the cause.")));
	pg_unreachable();
}
