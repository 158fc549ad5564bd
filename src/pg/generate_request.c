/*
 * generate_request.c — the arguments shared by llm_generate,
 * llm_generate_stream, llm_generate_batch and table jobs: checked once here
 * and turned into the fields of a GENERATE request.
 *
 * The fields are kept in two parts: those that decide the output (sampling
 * settings, stop strings, the model's context size) form the response
 * cache's key; the others (model path, monitoring, priority, timeout) do not.
 */
#include "llamagpu.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define MAX_TOKENS_LIMIT	1048576
#define MAX_STOPS			16
#define PRIORITY_LIMIT		1000000

/* A sampler option carried in the options jsonb. */
typedef struct GenerateOption
{
	const char *name;
	bool		is_int;
	double		min;
	double		max;
} GenerateOption;

static const GenerateOption generate_options[] = {
	{"min_p", false, 0, 1},
	{"typical_p", false, 0, 1},
	{"repeat_penalty", false, 0, 100},
	{"presence_penalty", false, -100, 100},
	{"frequency_penalty", false, -100, 100},
	{"penalty_last_n", true, -1, 1048576},
};

#define OPTION_NAMES "min_p, typical_p, repeat_penalty, presence_penalty, frequency_penalty, penalty_last_n, logit_bias, priority, cache, json_schema, grammar, json_compact, json_strict, chat_template, logits_processor, plugin_options"

/* What the options say about the shape of the output (grammar, schema, template). */
typedef struct OutputOptions
{
	char	   *grammar;
	char	   *json_schema;
	int			json_compact;	/* -1: absent */
	int			json_strict;
	char	   *chat_template;
} OutputOptions;

/* Error out unless x is a number in [min, max]. */
static void
check_float_arg(const char *name, double x, double min, double max)
{
	if (isnan(x))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NaN", name)));
	if (x < min || x > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %g and %g", name, min, max),
				 errdetail("The value given was %g.", x)));
}

/* A jsonb number as a double. */
static double
jsonb_number(JsonbValue *v)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(v->val.numeric)));
}

/* logit_bias: {"token id": bias, ...} */
static void
add_logit_bias(StringInfo req, JsonbValue *obj)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (obj->type != jbvBinary || !JsonContainerIsObject(obj->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("option \"logit_bias\" must be a JSON object"),
				 errhint("Map token ids to biases, e.g. {\"13\": -100}.")));
	it = JsonbIteratorInit(obj->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		char	   *end;
		long		id;
		double		bias;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		errno = 0;
		id = strtol(key, &end, 10);
		if (errno != 0 || end == key || *end != '\0' || id < 0 || id > PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid token id \"%s\" in option \"logit_bias\"", key)));
		JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("bias for token %ld in option \"logit_bias\" must be a number", id)));
		bias = jsonb_number(&v);
		check_float_arg("logit_bias", bias, -1e9, 1e9);
		appendStringInfoString(req, "logit_bias");
		appendStringInfoChar(req, '\0');
		appendStringInfo(req, "%ld:%.9g", id, bias);
		appendStringInfoChar(req, '\0');
	}
}

/* A non-empty string option, as UTF-8 text. */
static char *
option_text(JsonbValue *v, const char *key)
{
	char	   *s;

	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("option \"%s\" must be a string", key)));
	if (v->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("option \"%s\" must not be empty", key)));
	s = pnstrdup(v->val.string.val, v->val.string.len);
	/* jsonb holds the database encoding; the engine reads UTF-8 */
	return LlamagpuUtf8FromText(cstring_to_text(s));
}

/*
 * A JSON Schema as the text the engine compiles.  An object or a boolean is
 * written out by jsonb, whose keys are sorted (shorter first), so generated
 * objects list their properties in that order; a string is taken as the
 * schema's own text, which keeps the properties in the order written.
 */
char *
GenerateSchemaText(JsonbValue *v, const char *what)
{
	char	   *s;

	if (v->type == jbvBool)
		return pstrdup(v->val.boolean ? "true" : "false");
	if (v->type == jbvString)
	{
		Jsonb	   *parsed;
		JsonbValue	sv;

		s = pnstrdup(v->val.string.val, v->val.string.len);
		/* must be JSON itself: an object or a boolean */
		parsed = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
		if (!(JB_ROOT_IS_OBJECT(parsed) && !JB_ROOT_IS_SCALAR(parsed)) &&
			!(JsonbExtractScalar(&parsed->root, &sv) && sv.type == jbvBool))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be a JSON object or boolean", what),
					 errhint("A JSON Schema is an object such as {\"type\": \"object\"}, or true or false.")));
		return LlamagpuUtf8FromText(cstring_to_text(s));
	}
	if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
	{
		s = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		return LlamagpuUtf8FromText(cstring_to_text(s));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be a JSON object or boolean", what),
			 errhint("A JSON Schema is an object such as {\"type\": \"object\"}, or true or false.")));
	return NULL;				/* keep the compiler quiet */
}

/*
 * Check the options jsonb and add its settings to the request: sampler
 * settings to the key fields, priority to the others; cache sets *cache
 * (-1 when absent).  Keys come in jsonb's sorted order, so the key fields
 * are the same for equal options however they were written.
 */
static void
add_options(GenerateRequest *req, Jsonb *options, int *cache, OutputOptions *out)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	*cache = -1;
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("Valid options are: " OPTION_NAMES ".")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		const GenerateOption *opt = NULL;
		double		x;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		/* skipNested: a nested container comes back whole, as jbvBinary */
		JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "logit_bias") == 0)
		{
			add_logit_bias(&req->key_fields, &v);
			continue;
		}
		if (strcmp(key, "cache") == 0)
		{
			if (v.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"cache\" must be a boolean")));
			*cache = v.val.boolean ? 1 : 0;
			continue;
		}
		if (strcmp(key, "json_schema") == 0)
		{
			out->json_schema = GenerateSchemaText(&v, "option \"json_schema\"");
			continue;
		}
		if (strcmp(key, "grammar") == 0 || strcmp(key, "chat_template") == 0)
		{
			char	   *text = option_text(&v, key);

			if (key[0] == 'g')
				out->grammar = text;
			else
				out->chat_template = text;
			continue;
		}
		if (strcmp(key, "logits_processor") == 0 || strcmp(key, "plugin_options") == 0)
		{
			/* an engine plugin (docs/plugins.md): it shapes the output, so it is in the key */
			PluginGenerateOption(&req->key_fields, key, &v);
			continue;
		}
		if (strcmp(key, "json_compact") == 0 || strcmp(key, "json_strict") == 0)
		{
			if (v.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"%s\" must be a boolean", key)));
			if (strcmp(key, "json_compact") == 0)
				out->json_compact = v.val.boolean;
			else
				out->json_strict = v.val.boolean;
			continue;
		}
		if (strcmp(key, "priority") == 0)
		{
			if (v.type != jbvNumeric)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"priority\" must be a number")));
			x = jsonb_number(&v);
			if (x != floor(x))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"priority\" must be an integer")));
			if (x < -PRIORITY_LIMIT || x > PRIORITY_LIMIT)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("priority must be between %d and %d", -PRIORITY_LIMIT, PRIORITY_LIMIT),
						 errdetail("The value given was %.0f.", x)));
			EngineFieldInt(&req->other_fields, "priority", (int64) x);
			continue;
		}
		for (int i = 0; i < lengthof(generate_options); i++)
			if (strcmp(key, generate_options[i].name) == 0)
				opt = &generate_options[i];
		if (opt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized option \"%s\"", key),
					 errhint("Valid options are: " OPTION_NAMES ".")));
		if (v.type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("option \"%s\" must be a number", key)));
		x = jsonb_number(&v);
		check_float_arg(key, x, opt->min, opt->max);
		if (opt->is_int)
		{
			if (x != floor(x))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"%s\" must be an integer", key)));
			EngineFieldInt(&req->key_fields, key, (int64) x);
		}
		else
			EngineFieldFloat(&req->key_fields, key, x);
	}
}

/*
 * The fields that shape the output: the function's own grammar or schema,
 * or the options' (not both, and not a grammar with a schema), the schema
 * compiler's settings and a chat template.  All decide the output, so all
 * are part of the response cache's key.
 */
static void
add_output_fields(GenerateRequest *req, GenerateArgs *args, OutputOptions *out)
{
	const char *grammar = args->grammar;
	const char *schema = args->json_schema;

	if ((args->grammar || args->json_schema) && (out->grammar || out->json_schema))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options \"grammar\" and \"json_schema\" cannot be used with this function"),
				 errdetail("The function constrains its output itself.")));
	if (out->grammar && out->json_schema)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options \"grammar\" and \"json_schema\" cannot both be given"),
				 errhint("Give one of them: a JSON schema is compiled to a grammar.")));
	if (out->chat_template && !args->chat)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"chat_template\" is only valid in llm_chat"),
				 errhint("Other functions continue the prompt as given, without a chat template.")));
	if (grammar == NULL)
		grammar = out->grammar;
	if (schema == NULL)
		schema = out->json_schema;
	if (grammar)
		EngineField(&req->key_fields, "grammar", grammar);
	if (schema)
		EngineField(&req->key_fields, "json_schema", schema);
	if (out->json_compact >= 0)
		EngineFieldInt(&req->key_fields, "json_compact", out->json_compact);
	if (out->json_strict >= 0)
		EngineFieldInt(&req->key_fields, "json_strict", out->json_strict);
	if (out->chat_template)
		EngineField(&req->key_fields, "chat_template", out->chat_template);
	req->constrained = grammar != NULL || schema != NULL;
	req->json = schema != NULL;
	req->chat = args->chat;
	/* callers that are more specific (batch, stream, job) say so themselves */
	req->kind = req->chat ? "chat" : req->json ? "json" : req->constrained ? "grammar" : "generate";
}

/* Arguments model, max_tokens, temperature, top_p, top_k, seed from argument `first` on. */
static void
generate_args_sampling(FunctionCallInfo fcinfo, int first, GenerateArgs *args)
{
	memset(args, 0, sizeof(*args));
	if (!PG_ARGISNULL(first))
		args->model = text_to_cstring(PG_GETARG_TEXT_PP(first));
	if ((args->has_max_tokens = !PG_ARGISNULL(first + 1)))
		args->max_tokens = PG_GETARG_INT32(first + 1);
	if ((args->has_temperature = !PG_ARGISNULL(first + 2)))
		args->temperature = PG_GETARG_FLOAT8(first + 2);
	if ((args->has_top_p = !PG_ARGISNULL(first + 3)))
		args->top_p = PG_GETARG_FLOAT8(first + 3);
	if ((args->has_top_k = !PG_ARGISNULL(first + 4)))
		args->top_k = PG_GETARG_INT32(first + 4);
	if ((args->has_seed = !PG_ARGISNULL(first + 5)))
		args->seed = PG_GETARG_INT64(first + 5);
}

/* Arguments model .. options, from argument `first` (the one after the prompt). */
void
GenerateArgsFromCall(FunctionCallInfo fcinfo, int first, GenerateArgs *args)
{
	generate_args_sampling(fcinfo, first, args);
	if (!PG_ARGISNULL(first + 6))
		args->stop = PG_GETARG_ARRAYTYPE_P(first + 6);
	if (!PG_ARGISNULL(first + 7))
		args->options = PG_GETARG_JSONB_P(first + 7);
}

/* Arguments model, max_tokens .. seed, options (no stop strings), from argument `first`. */
void
GenerateArgsFromCallNoStop(FunctionCallInfo fcinfo, int first, GenerateArgs *args)
{
	generate_args_sampling(fcinfo, first, args);
	if (!PG_ARGISNULL(first + 6))
		args->options = PG_GETARG_JSONB_P(first + 6);
}

/* A prompt as UTF-8; it must not be empty. */
char *
GeneratePromptUtf8(text *prompt)
{
	char	   *s = LlamagpuUtf8FromText(prompt);

	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("prompt must not be empty")));
	return s;
}

/*
 * Check the arguments and build the request (less its prompt).  NULL for a
 * setting means the engine's default.
 */
void
GenerateRequestBuild(GenerateArgs *args, GenerateRequest *req)
{
	int			cache = -1;
	OutputOptions out = {NULL, NULL, -1, -1, NULL};

	memset(req, 0, sizeof(*req));
	initStringInfo(&req->key_fields);
	initStringInfo(&req->other_fields);

	if (args->has_max_tokens)
	{
		if (args->max_tokens < 1 || args->max_tokens > MAX_TOKENS_LIMIT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_tokens must be between 1 and %d", MAX_TOKENS_LIMIT),
					 errdetail("The value given was %d.", args->max_tokens)));
		EngineFieldInt(&req->key_fields, "max_tokens", args->max_tokens);
	}
	if (args->has_temperature)
	{
		check_float_arg("temperature", args->temperature, 0, 100);
		EngineFieldFloat(&req->key_fields, "temperature", args->temperature);
		/* the engine samples greedily at temperature 0, whatever else is set */
		req->greedy = args->temperature == 0;
	}
	if (args->has_top_p)
	{
		check_float_arg("top_p", args->top_p, 0, 1);
		EngineFieldFloat(&req->key_fields, "top_p", args->top_p);
	}
	if (args->has_top_k)
	{
		if (args->top_k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("top_k must not be negative"),
					 errhint("0 disables top-k sampling.")));
		EngineFieldInt(&req->key_fields, "top_k", args->top_k);
	}
	if (args->has_seed)
	{
		char		num[32];

		/* the engine's seed is 64 unsigned bits: a negative bigint wraps */
		snprintf(num, sizeof(num), UINT64_FORMAT, (uint64) args->seed);
		EngineField(&req->key_fields, "seed", num);
	}
	if (args->stop)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(args->stop, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		if (n > MAX_STOPS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many stop strings"),
					 errdetail("%d stop strings were given, the limit is %d.", n, MAX_STOPS)));
		for (int i = 0; i < n; i++)
		{
			char	   *s;

			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("stop strings must not be null")));
			s = LlamagpuUtf8FromText(DatumGetTextPP(elems[i]));
			if (s[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
						 errmsg("stop strings must not be empty")));
			EngineField(&req->key_fields, "stop", s);
		}
	}
	if (args->options)
		add_options(req, args->options, &cache, &out);
	add_output_fields(req, args, &out);

	req->model = LlamagpuModelLookup(args->model, true);
	/* the context size decides where a long generation stops: part of the key */
	if (req->model->context_size > 0)
		EngineFieldInt(&req->key_fields, "n_ctx", req->model->context_size);
	EngineField(&req->other_fields, "model", req->model->name);
	EngineField(&req->other_fields, "path", req->model->path);
	if (req->model->provider)
		LlamagpuProviderFields(&req->other_fields, req->model);
	EngineFieldInt(&req->other_fields, "backend_pid", MyProcPid);
	EngineField(&req->other_fields, "role", GetUserNameFromId(GetUserId(), false));
	if (llamagpu_log_min_duration >= 0)
		EngineFieldInt(&req->other_fields, "log_min_duration_ms", llamagpu_log_min_duration);
	if (llamagpu_request_timeout > 0)
		EngineFieldInt(&req->other_fields, "timeout_ms", llamagpu_request_timeout);

	/*
	 * the options win over the setting; only greedy output is reproducible.
	 * A chat answer is more than text (tool calls, finish reason): never cached.
	 */
	req->use_cache = !req->chat && req->greedy &&
		(cache == 1 || (cache == -1 && llamagpu_response_cache));
}

/* The GENERATE payload for one prompt. */
void
GenerateRequestPayload(GenerateRequest *req, const char *prompt, StringInfo out)
{
	initStringInfo(out);
	if (!req->chat)
		EngineField(out, "prompt", prompt);
	appendBinaryStringInfo(out, req->key_fields.data, req->key_fields.len);
	appendBinaryStringInfo(out, req->other_fields.data, req->other_fields.len);
}
