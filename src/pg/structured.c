/*
 * structured.c — generation whose output has a shape: llm_generate_json
 * (a jsonb value that fits a JSON Schema), llm_generate_grammar (text in a
 * GBNF grammar's language) and llm_classify (exactly one of a set of labels).
 *
 * The engine enforces the shape while sampling (docs/structured-output.md);
 * these functions only build the request and check that what comes back is
 * whole: a JSON value cut short by max_tokens is an error, never a guess.
 */
#include "llamagpu.h"

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(llm_generate_json);
PG_FUNCTION_INFO_V1(llm_generate_grammar);
PG_FUNCTION_INFO_V1(llm_classify);

#define CLASSIFY_MAX_LABELS 1024

/* Error out if argument n is NULL. */
static void
require_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/* Generate one prompt and return its item (errors raise). */
static BatchItem *
generate_one(GenerateRequest *req, const char *prompt)
{
	BatchItem  *item = palloc0(sizeof(BatchItem));

	item->prompt = prompt;
	GenerateBatchRun(req, item, 1, 1, true, NULL);
	return item;
}

/* Whether s (database encoding) is one whole JSON value. */
static bool
is_whole_json(char *s, int len)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen(s, len, GetDatabaseEncoding(), false);

	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/* Whether an output as the engine sent it (UTF-8) is one whole JSON value. */
bool
GenerateOutputIsWholeJson(const char *utf8, int len)
{
	char	   *s = text_to_cstring(LlamagpuTextFromUtf8(utf8, len));

	return is_whole_json(s, strlen(s));
}

/* At most the first 200 characters of s, for an error detail. */
static char *
output_excerpt(const char *s)
{
	int			len = strlen(s);
	int			cut = len > 200 ? pg_mbcliplen(s, len, 200) : len;

	return psprintf("%.*s%s", cut, s, cut < len ? "..." : "");
}

/*
 * llm_generate_json(prompt, schema, model, max_tokens, temperature, top_p,
 * top_k, seed, options) RETURNS jsonb: a value valid against schema.
 */
Datum
llm_generate_json(PG_FUNCTION_ARGS)
{
	GenerateArgs args;
	GenerateRequest req;
	Jsonb	   *schema;
	JsonbValue	sv;
	char	   *prompt;
	BatchItem  *item;
	char	   *out;
	int			len;

	require_arg(fcinfo, 0, "prompt");
	require_arg(fcinfo, 1, "schema");
	prompt = GeneratePromptUtf8(PG_GETARG_TEXT_PP(0));
	schema = PG_GETARG_JSONB_P(1);
	if (JB_ROOT_IS_SCALAR(schema))
		JsonbExtractScalar(&schema->root, &sv);
	else
	{
		sv.type = jbvBinary;
		sv.val.binary.data = &schema->root;
		sv.val.binary.len = VARSIZE(schema) - VARHDRSZ;
	}
	GenerateArgsFromCallNoStop(fcinfo, 2, &args);
	args.json_schema = GenerateSchemaText(&sv, "schema");
	GenerateRequestBuild(&args, &req);

	item = generate_one(&req, prompt);
	out = text_to_cstring(LlamagpuTextFromUtf8(item->output.data, item->output.len));
	len = strlen(out);
	if (!is_whole_json(out, len))
	{
		/* a cached answer has no finish reason: only a cut-off one can be incomplete */
		if (strcmp(item->finish, "length") == 0 || item->cached)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("generated JSON value is incomplete"),
					 errdetail("Generation stopped at the token limit after " INT64_FORMAT " tokens, before the value was complete.",
							   item->n_gen),
					 errhint("Raise max_tokens%s, or ask for a smaller value (maxLength, maxItems).",
							 args.has_max_tokens ? psprintf(" (it was %d)", args.max_tokens) : "")));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("llamagpu engine returned text that is not JSON"),
				 errdetail("The output began: %s", output_excerpt(out)),
				 errhint("The engine must enforce the schema; install the llamagpu executable from the same build as the extension.")));
	}
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out)));
}

/*
 * llm_generate_grammar(prompt, grammar, model, max_tokens, ..., stop,
 * options) RETURNS text: output in the grammar's language (GBNF, start
 * rule "root").  Stopped by max_tokens or a stop string, it may be a prefix.
 */
Datum
llm_generate_grammar(PG_FUNCTION_ARGS)
{
	GenerateArgs args;
	GenerateRequest req;
	char	   *prompt;
	char	   *grammar;
	BatchItem  *item;

	require_arg(fcinfo, 0, "prompt");
	require_arg(fcinfo, 1, "grammar");
	prompt = GeneratePromptUtf8(PG_GETARG_TEXT_PP(0));
	grammar = LlamagpuUtf8FromText(PG_GETARG_TEXT_PP(1));
	if (grammar[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("grammar must not be empty"),
				 errhint("A grammar defines at least the rule root, e.g. root ::= \"yes\" | \"no\".")));
	GenerateArgsFromCall(fcinfo, 2, &args);
	args.grammar = grammar;
	GenerateRequestBuild(&args, &req);

	item = generate_one(&req, prompt);
	PG_RETURN_TEXT_P(LlamagpuTextFromUtf8(item->output.data, item->output.len));
}

/* Append s (UTF-8) to a GBNF grammar as a string literal. */
static void
append_gbnf_literal(StringInfo g, const char *s)
{
	appendStringInfoChar(g, '"');
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			appendStringInfo(g, "\\%c", *p);
		else if (*p == '\n')
			appendStringInfoString(g, "\\n");
		else if (*p == '\r')
			appendStringInfoString(g, "\\r");
		else if (*p == '\t')
			appendStringInfoString(g, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			appendStringInfo(g, "\\x%02X", *p);
		else
			appendStringInfoChar(g, (char) *p);	/* UTF-8 is taken as is */
	}
	appendStringInfoChar(g, '"');
}

/* The labels argument, checked: a non-empty array of distinct non-empty strings. */
static char **
classify_labels(ArrayType *arr, int *n_out)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	  **labels;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("labels must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("labels must not be empty"),
				 errhint("Give the labels to choose from, e.g. ARRAY['positive', 'negative'].")));
	if (n > CLASSIFY_MAX_LABELS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many labels"),
				 errdetail("%d labels were given, the limit is %d.", n, CLASSIFY_MAX_LABELS)));
	labels = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("labels must not be null")));
		labels[i] = LlamagpuUtf8FromText(DatumGetTextPP(elems[i]));
		if (labels[i][0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
					 errmsg("labels must not be empty strings")));
		for (int j = 0; j < i; j++)
			if (strcmp(labels[i], labels[j]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("labels must be distinct"),
						 errdetail("The label \"%s\" is given more than once.",
								   TextDatumGetCString(elems[i]))));
	}
	*n_out = n;
	return labels;
}

/*
 * llm_classify(input, labels, model, instruction, temperature, seed,
 * options) RETURNS text: one of labels.  The prompt is
 *
 *     <instruction, or "Classify the text into one of the labels.">
 *     Labels: <label 1>, <label 2>, ...
 *
 *     Text: <input>
 *     Label:
 *
 * and the output is constrained by the grammar  root ::= " "? ("l1" | "l2" ...)
 * (the space lets the model use its usual word-start tokens; it is dropped).
 * A NULL input gives NULL.
 */
Datum
llm_classify(PG_FUNCTION_ARGS)
{
	GenerateArgs args;
	GenerateRequest req;
	char	  **labels;
	int			n;
	char	   *input;
	StringInfoData prompt;
	StringInfoData grammar;
	size_t		longest = 0;
	BatchItem  *item;
	const char *out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	require_arg(fcinfo, 1, "labels");
	input = LlamagpuUtf8FromText(PG_GETARG_TEXT_PP(0));
	labels = classify_labels(PG_GETARG_ARRAYTYPE_P(1), &n);

	initStringInfo(&prompt);
	if (!PG_ARGISNULL(3))
	{
		char	   *instruction = LlamagpuUtf8FromText(PG_GETARG_TEXT_PP(3));

		if (instruction[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
					 errmsg("instruction must not be empty"),
					 errhint("Pass NULL for the default instruction.")));
		appendStringInfoString(&prompt, instruction);
	}
	else
		appendStringInfoString(&prompt, "Classify the text into one of the labels.");
	appendStringInfoString(&prompt, "\nLabels: ");
	initStringInfo(&grammar);
	appendStringInfoString(&grammar, "root ::= \" \"? (");
	for (int i = 0; i < n; i++)
	{
		appendStringInfo(&prompt, "%s%s", i > 0 ? ", " : "", labels[i]);
		appendStringInfoString(&grammar, i > 0 ? " | " : " ");
		append_gbnf_literal(&grammar, labels[i]);
		longest = Max(longest, strlen(labels[i]));
	}
	appendStringInfoString(&grammar, " )\n");
	appendStringInfo(&prompt, "\n\nText: %s\nLabel:", input);

	memset(&args, 0, sizeof(args));
	if (!PG_ARGISNULL(2))
		args.model = text_to_cstring(PG_GETARG_TEXT_PP(2));
	/* every token but the end adds at least a byte: this always suffices */
	args.has_max_tokens = true;
	args.max_tokens = (int32) Min(longest + 2, 1048576);
	if ((args.has_temperature = !PG_ARGISNULL(4)))
		args.temperature = PG_GETARG_FLOAT8(4);
	if ((args.has_seed = !PG_ARGISNULL(5)))
		args.seed = PG_GETARG_INT64(5);
	if (!PG_ARGISNULL(6))
		args.options = PG_GETARG_JSONB_P(6);
	args.grammar = grammar.data;
	GenerateRequestBuild(&args, &req);
	req.kind = "classify";

	item = generate_one(&req, prompt.data);
	out = item->output.data;
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < n; i++)
			if (strcmp(out, labels[i]) == 0)
				PG_RETURN_TEXT_P(LlamagpuTextFromUtf8(labels[i], strlen(labels[i])));
		/* the grammar's optional leading space */
		if (out[0] != ' ')
			break;
		out++;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("llamagpu engine returned text that is not one of the labels"),
			 errdetail("The output was: %s",
					   output_excerpt(text_to_cstring(LlamagpuTextFromUtf8(item->output.data, item->output.len)))),
			 errhint("The engine must enforce the grammar; install the llamagpu executable from the same build as the extension.")));
	PG_RETURN_NULL();
}
