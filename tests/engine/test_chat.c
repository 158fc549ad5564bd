/*
 * test_chat.c — tool-call formats: detection on the real templates of
 * ../shared/fixtures/chat-templates, the answer grammars (compiled by the
 * real GBNF parser and JSON Schema compiler, then fed calls byte by byte:
 * valid ones accepted and complete, invalid ones rejected), and the parse
 * of answers into OpenAI messages (malformed calls come back as content).
 */
#include "test_util.h"

#include "chat.h"
#include "grammar.h"
#include "json_value.h"

/* Two tools with closed parameter schemas. */
static const char *const tools_json =
	"[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\","
	"  \"parameters\": {\"type\": \"object\", \"properties\": {"
	"    \"city\": {\"type\": \"string\"}, \"unit\": {\"enum\": [\"celsius\", \"fahrenheit\"]}},"
	"    \"required\": [\"city\", \"unit\"], \"additionalProperties\": false}}},"
	" {\"type\": \"function\", \"function\": {\"name\": \"add\","
	"  \"parameters\": {\"type\": \"object\", \"properties\": {"
	"    \"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\"}},"
	"    \"required\": [\"a\", \"b\"], \"additionalProperties\": false}}}]";

#define DS_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

/* One call of get_weather(Paris, celsius) and one of add(2, 3), in each format's own words. */
static const struct
{
	lg_chat_format f;
	const char *weather;
	const char *two_calls;		/* weather then add, where the format allows several */
	const char *bad_args;		/* unit "kelvin": the grammar must refuse it */
} samples[] = {
	{LG_CHAT_HERMES,
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>",
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>\n"
		"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call>",
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"kelvin\"}}\n</tool_call>"},
	{LG_CHAT_LLAMA3,
		"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}",
		NULL,
		"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"kelvin\"}}"},
	{LG_CHAT_MISTRAL,
		"[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}, \"id\": \"a1b2c3d4e\"}]",
		"[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}, \"id\": \"a1b2c3d4e\"}, "
		"{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}, \"id\": \"Z9Y8X7W6V\"}]",
		"[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"kelvin\"}, \"id\": \"a1b2c3d4e\"}]"},
	{LG_CHAT_FUNCTIONARY,
		"<function=get_weather>{\"city\": \"Paris\", \"unit\": \"celsius\"}</function>",
		"<function=get_weather>{\"city\": \"Paris\", \"unit\": \"celsius\"}</function><function=add>{\"a\": 2, \"b\": 3}</function>",
		"<function=get_weather>{\"city\": \"Paris\", \"unit\": \"kelvin\"}</function>"},
	{LG_CHAT_COMMAND_R,
		"Action:\n```json\n[{\"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}]\n```",
		"Action:\n```json\n[{\"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}, "
		"{\"tool_name\": \"add\", \"parameters\": {\"a\": 2, \"b\": 3}}]\n```",
		"Action:\n```json\n[{\"tool_name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"kelvin\"}}]\n```"},
	{LG_CHAT_DEEPSEEK_R1,
		DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n{\"city\": \"Paris\", \"unit\": \"celsius\"}\n```" DS_CALL_END DS_CALLS_END,
		DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n{\"city\": \"Paris\", \"unit\": \"celsius\"}\n```" DS_CALL_END "\n"
		DS_CALL_BEGIN "function" DS_SEP "add\n```json\n{\"a\": 2, \"b\": 3}\n```" DS_CALL_END DS_CALLS_END,
		DS_CALLS_BEGIN DS_CALL_BEGIN "function" DS_SEP "get_weather\n```json\n{\"city\": \"Paris\", \"unit\": \"kelvin\"}\n```" DS_CALL_END DS_CALLS_END},
	{LG_CHAT_GENERIC,
		"{\"tool_call\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}}",
		NULL,
		"{\"tool_call\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"kelvin\"}}}"},
};

#define N_SAMPLES ((int) (sizeof(samples) / sizeof(samples[0])))

/* Read a fixture template into a malloc'd string, or NULL (skip). */
static char *
read_template(const char *name)
{
	char		rel[512];
	char		buf[4096];
	const char *path;
	FILE	   *f;
	char	   *text;
	long		n;

	snprintf(rel, sizeof(rel), "fixtures/chat-templates/%s", name);
	path = lg_test_fixture(buf, rel);
	if (path == NULL)
		return NULL;
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	text = malloc((size_t) n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t) n, f), (size_t) n);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* Every fixture template maps to the format its model was trained on. */
static void
test_detect_fixtures(void **state)
{
	static const struct
	{
		const char *file;
		lg_chat_format f;
	}			cases[] = {
		{"CohereForAI-c4ai-command-r-plus-tool_use.jinja", LG_CHAT_COMMAND_R},
		{"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", LG_CHAT_HERMES},
		{"NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", LG_CHAT_HERMES},
		{"Qwen-Qwen2.5-7B-Instruct.jinja", LG_CHAT_HERMES},
		{"deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", LG_CHAT_DEEPSEEK_R1},
		{"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", LG_CHAT_DEEPSEEK_R1},
		{"llama-cpp-deepseek-r1.jinja", LG_CHAT_DEEPSEEK_R1},
		{"google-gemma-2-2b-it.jinja", LG_CHAT_GENERIC},
		{"meetkai-functionary-medium-v3.1.jinja", LG_CHAT_FUNCTIONARY},
		{"meta-llama-Llama-3.1-8B-Instruct.jinja", LG_CHAT_LLAMA3},
		{"meta-llama-Llama-3.2-3B-Instruct.jinja", LG_CHAT_LLAMA3},
		{"meta-llama-Llama-3.3-70B-Instruct.jinja", LG_CHAT_LLAMA3},
		{"microsoft-Phi-3.5-mini-instruct.jinja", LG_CHAT_GENERIC},
		{"mistralai-Mistral-Nemo-Instruct-2407.jinja", LG_CHAT_MISTRAL},
	};
	int			found = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char	   *t = read_template(cases[i].file);
		lg_chat_format f;

		if (t == NULL)
			continue;
		found++;
		f = lg_chat_detect_format(t, strlen(t));
		if (f != cases[i].f)
			fail_msg("%s: detected %s, expected %s", cases[i].file, lg_chat_format_name(f),
					 lg_chat_format_name(cases[i].f));
		free(t);
	}
	if (found == 0)
		skip();
	assert_int_equal(lg_chat_detect_format(NULL, 0), LG_CHAT_GENERIC);
	assert_int_equal(lg_chat_detect_format("{{ messages }}", 14), LG_CHAT_GENERIC);
}

/* Build the grammar for format f and choice; it must compile. */
static lg_grammar *
build(lg_chat_format f, const char *choice, const char *response_format)
{
	lg_chat_grammar_params p = {
		.format = f, .tools_json = tools_json, .tools_len = strlen(tools_json), .tool_choice = choice,
		.response_format_json = response_format,
		.response_format_len = response_format ? strlen(response_format) : 0,
	};
	lg_buf		b;
	lg_error	err;
	bool		constrained = false;
	lg_grammar *g;

	lg_buf_init(&b);
	lg_error_clear(&err);
	if (lg_chat_build_grammar(&p, &b, &constrained, &err) != LG_OK)
		fail_msg("%s/%s: %s", lg_chat_format_name(f), choice ? choice : "auto", err.msg);
	assert_true(constrained);
	g = lg_grammar_parse(b.data, b.len, &err);
	if (g == NULL)
		fail_msg("%s/%s: the grammar does not parse: %s\n%s", lg_chat_format_name(f),
				 choice ? choice : "auto", err.msg, b.data);
	lg_buf_free(&b);
	return g;
}

/* Whether g accepts text whole (and is complete after it). */
static bool
accepts(const lg_grammar *g, const char *text)
{
	lg_error	err;
	lg_grammar_matcher *m;
	bool		ok;

	lg_error_clear(&err);
	m = lg_grammar_matcher_new(g, NULL, &err);
	assert_non_null(m);
	ok = lg_grammar_matcher_accept_bytes(m, text, strlen(text)) && lg_grammar_matcher_is_complete(m);
	lg_grammar_matcher_free(m);
	return ok;
}

/* Whether g accepts text as a prefix (not necessarily complete). */
static bool
accepts_prefix(const lg_grammar *g, const char *text)
{
	lg_error	err;
	lg_grammar_matcher *m;
	bool		ok;

	lg_error_clear(&err);
	m = lg_grammar_matcher_new(g, NULL, &err);
	assert_non_null(m);
	ok = lg_grammar_matcher_accept_bytes(m, text, strlen(text));
	lg_grammar_matcher_free(m);
	return ok;
}

/* required / a named function: exactly the format's calls, with arguments that fit the schema. */
static void
test_grammar_required(void **state)
{
	for (int i = 0; i < N_SAMPLES; i++)
	{
		lg_grammar *g = build(samples[i].f, "required", NULL);
		lg_grammar *named = build(samples[i].f, "add", NULL);
		const char *name = lg_chat_format_name(samples[i].f);

		if (!accepts(g, samples[i].weather))
			fail_msg("%s: the call is refused", name);
		if (samples[i].two_calls && !accepts(g, samples[i].two_calls))
			fail_msg("%s: two calls are refused", name);
		if (accepts_prefix(g, samples[i].bad_args))
			fail_msg("%s: arguments outside the schema pass", name);
		if (accepts_prefix(g, "Hello"))
			fail_msg("%s: text passes where a call is required", name);
		/* tool_choice naming add: get_weather is not allowed */
		if (accepts_prefix(named, samples[i].weather))
			fail_msg("%s: another function than the named one passes", name);
		lg_grammar_free(g);
		lg_grammar_free(named);
	}
}

/* auto: text, or (once the marker is written) valid calls. */
static void
test_grammar_auto(void **state)
{
	for (int i = 0; i < N_SAMPLES; i++)
	{
		lg_grammar *g = build(samples[i].f, "auto", NULL);
		const char *name = lg_chat_format_name(samples[i].f);

		if (!accepts(g, samples[i].weather))
			fail_msg("%s: the call is refused", name);
		if (!accepts(g, "It is sunny in Paris today, 22 degrees."))
			fail_msg("%s: plain text is refused", name);
		if (accepts_prefix(g, samples[i].bad_args))
			fail_msg("%s: arguments outside the schema pass", name);
		lg_grammar_free(g);
	}
	/* tag markers: text, then calls; the marker always starts valid calls */
	{
		lg_grammar *g = build(LG_CHAT_HERMES, NULL, NULL);
		char		text[1024];

		snprintf(text, sizeof(text), "Let me check. %s", samples[0].weather);
		assert_true(accepts(g, text));
		assert_true(accepts(g, "a < b and <tool is not a call"));
		assert_false(accepts_prefix(g, "Let me check. <tool_call>oops"));
		assert_false(accepts_prefix(g, "<tool_call>\n{\"name\": \"unknown\""));
		lg_grammar_free(g);
	}
	/* JSON markers: a call only at the start; text must not start with the marker */
	{
		lg_grammar *g = build(LG_CHAT_LLAMA3, NULL, NULL);

		assert_false(accepts_prefix(g, "{oops"));
		assert_true(accepts(g, "Sure: {not a call}"));
		lg_grammar_free(g);
	}
}

/* none without a response format is free; response formats constrain. */
static void
test_grammar_none_and_response_format(void **state)
{
	lg_chat_grammar_params p = {
		.format = LG_CHAT_HERMES, .tools_json = tools_json, .tools_len = strlen(tools_json), .tool_choice = "none",
	};
	lg_buf		b;
	lg_error	err;
	bool		constrained = true;
	lg_grammar *g;

	lg_buf_init(&b);
	lg_error_clear(&err);
	assert_int_equal(lg_chat_build_grammar(&p, &b, &constrained, &err), LG_OK);
	assert_false(constrained);
	assert_int_equal(b.len, 0);
	lg_buf_free(&b);

	g = build(LG_CHAT_HERMES, "none", "{\"type\": \"json_object\"}");
	assert_true(accepts(g, "{\"anything\": [1, 2]}"));
	assert_false(accepts_prefix(g, "[1]"));
	assert_false(accepts_prefix(g, "Hello"));
	lg_grammar_free(g);

	g = build(LG_CHAT_HERMES, "none",
			  "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"schema\": "
			  "{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}}, \"required\": [\"ok\"]}}}");
	assert_true(accepts(g, "{\"ok\": true}"));
	assert_false(accepts_prefix(g, "{\"ok\": 1"));
	lg_grammar_free(g);

	/* OpenAI's "strict": true closes objects; without it other keys are allowed, as JSON Schema says */
	g = build(LG_CHAT_HERMES, "none",
			  "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"strict\": true, \"schema\": "
			  "{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}}, \"required\": [\"ok\"]}}}");
	assert_true(accepts(g, "{\"ok\": true}"));
	assert_false(accepts_prefix(g, "{\"ok\": true, \"x\""));
	lg_grammar_free(g);
	g = build(LG_CHAT_HERMES, "none",
			  "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"schema\": "
			  "{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}}, \"required\": [\"ok\"]}}}");
	assert_true(accepts(g, "{\"ok\": true, \"x\": 1}"));
	lg_grammar_free(g);

	/* auto with a response format: a call, or the response */
	g = build(LG_CHAT_HERMES, "auto", "{\"type\": \"json_object\"}");
	assert_true(accepts(g, samples[0].weather));
	assert_true(accepts(g, "{\"a\": 1}"));
	assert_false(accepts_prefix(g, "Hello"));
	lg_grammar_free(g);
}

/* Bad tools, choices and formats are LG_ERR_ARG with a message that says which. */
static void
test_grammar_errors(void **state)
{
	static const struct
	{
		const char *tools;
		const char *choice;
		const char *rf;
		lg_status	st;
		const char *needle;
	}			cases[] = {
		{"[{\"type\": \"function\"}]", NULL, NULL, LG_ERR_ARG, "tools[0]"},
		{"{}", NULL, NULL, LG_ERR_ARG, "array"},
		{"[", NULL, NULL, LG_ERR_ARG, "not valid JSON"},
		{"[{\"type\": \"function\", \"function\": {\"name\": \"bad name\"}}]", NULL, NULL, LG_ERR_ARG, "name"},
		{NULL, "required", NULL, LG_ERR_ARG, "needs tools"},
		{"[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", "g", NULL, LG_ERR_ARG, "\"g\""},
		{NULL, NULL, "{\"type\": \"xml\"}", LG_ERR_ARG, "xml"},
		{"[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": "
			"{\"type\": \"array\", \"uniqueItems\": true}}}]", "required", NULL, LG_ERR_UNSUPPORTED, "tool \"f\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		lg_chat_grammar_params p = {
			.format = LG_CHAT_HERMES, .tools_json = cases[i].tools,
			.tools_len = cases[i].tools ? strlen(cases[i].tools) : 0, .tool_choice = cases[i].choice,
			.response_format_json = cases[i].rf, .response_format_len = cases[i].rf ? strlen(cases[i].rf) : 0,
		};
		lg_buf		b;
		lg_error	err;
		bool		constrained;

		lg_buf_init(&b);
		lg_error_clear(&err);
		if (lg_chat_build_grammar(&p, &b, &constrained, &err) != cases[i].st)
			fail_msg("case %zu: status %s (%s)", i, lg_status_name(err.status), err.msg);
		if (strstr(err.msg, cases[i].needle) == NULL)
			fail_msg("case %zu: \"%s\" does not mention %s", i, err.msg, cases[i].needle);
		lg_buf_free(&b);
	}
}

/* Parse text as format f; returns the message tree (caller frees) and the number of calls. */
static lg_json_node *
parse(lg_chat_format f, const char *text, int *n_calls)
{
	lg_buf		b;
	lg_error	err;
	lg_json_node *msg;

	lg_buf_init(&b);
	lg_error_clear(&err);
	assert_int_equal(lg_chat_parse_output(f, text, strlen(text), &b, n_calls, &err), LG_OK);
	msg = lg_json_parse(b.data, b.len, &err);
	if (msg == NULL)
		fail_msg("the message is not JSON: %s: %s", err.msg, b.data);
	lg_buf_free(&b);
	assert_string_equal(lg_json_get_str(msg, "role"), "assistant");
	return msg;
}

/* Call i of a message: its name, and its arguments (a JSON string) parsed back. */
static void
check_call(const lg_json_node *msg, size_t i, const char *name, const char *key, int64_t value)
{
	const lg_json_node *call = lg_json_at(lg_json_get(msg, "tool_calls"), i);
	const lg_json_node *fn = lg_json_get(call, "function");
	const char *id = lg_json_get_str(call, "id");
	const char *args = lg_json_get_str(fn, "arguments");
	lg_json_node *a;
	lg_error	err;

	assert_non_null(call);
	assert_string_equal(lg_json_get_str(call, "type"), "function");
	assert_non_null(id);
	assert_int_equal(strncmp(id, "call_", 5), 0);
	assert_int_equal(strlen(id), 29);
	assert_string_equal(lg_json_get_str(fn, "name"), name);
	assert_non_null(args);
	a = lg_json_parse(args, strlen(args), &err);
	assert_non_null(a);
	if (key != NULL)
	{
		assert_non_null(lg_json_get(a, key));
		if (value >= 0)
			assert_int_equal(lg_json_get(a, key)->integer, value);
		else
			assert_string_equal(lg_json_get_str(a, key), "Paris");
	}
	lg_json_node_free(a);
}

/* Every format's calls come back as tool_calls; text before them as content. */
static void
test_parse_calls(void **state)
{
	for (int i = 0; i < N_SAMPLES; i++)
	{
		int			n = -1;
		lg_json_node *msg = parse(samples[i].f, samples[i].weather, &n);

		if (n != 1)
			fail_msg("%s: %d calls found", lg_chat_format_name(samples[i].f), n);
		assert_int_equal(lg_json_get(msg, "content")->kind, LG_JSON_NULL);
		check_call(msg, 0, "get_weather", "city", -1);
		lg_json_node_free(msg);
		if (samples[i].two_calls)
		{
			msg = parse(samples[i].f, samples[i].two_calls, &n);
			assert_int_equal(n, 2);
			check_call(msg, 0, "get_weather", "city", -1);
			check_call(msg, 1, "add", "b", 3);
			/* two calls, two different ids */
			assert_string_not_equal(lg_json_get_str(lg_json_at(lg_json_get(msg, "tool_calls"), 0), "id"),
									lg_json_get_str(lg_json_at(lg_json_get(msg, "tool_calls"), 1), "id"));
			lg_json_node_free(msg);
		}
	}
	/* content, then a call */
	{
		char		text[1024];
		int			n;
		lg_json_node *msg;

		snprintf(text, sizeof(text), "Let me look that up.\n%s", samples[0].weather);
		msg = parse(LG_CHAT_HERMES, text, &n);
		assert_int_equal(n, 1);
		assert_string_equal(lg_json_get_str(msg, "content"), "Let me look that up.");
		lg_json_node_free(msg);
	}
}

/* An answer cut by max_tokens keeps the calls closed before the cut. */
static void
test_complete_prefix(void **state)
{
	const char *two = "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 3}}\n</tool_call>\n"
		"<tool_call>\n{\"name\": \"add\", \"argu";
	const char *fn = "<function=add>{\"a\": 1, \"b\": 3}</function><function=add>{\"a\"";
	size_t		keep;
	int			n = -1;
	lg_json_node *msg;
	char		text[512];

	(void) state;
	keep = lg_chat_complete_prefix(LG_CHAT_HERMES, two, strlen(two));
	assert_true(keep > 0 && keep < strlen(two));
	assert_memory_equal(two + keep - strlen("</tool_call>"), "</tool_call>", strlen("</tool_call>"));
	snprintf(text, sizeof(text), "%.*s", (int) keep, two);
	msg = parse(LG_CHAT_HERMES, text, &n);
	assert_int_equal(n, 1);
	check_call(msg, 0, "add", "b", 3);
	lg_json_node_free(msg);
	/* the whole cut text is no call at all */
	msg = parse(LG_CHAT_HERMES, two, &n);
	assert_int_equal(n, 0);
	lg_json_node_free(msg);

	keep = lg_chat_complete_prefix(LG_CHAT_FUNCTIONARY, fn, strlen(fn));
	assert_int_equal(keep, strlen("<function=add>{\"a\": 1, \"b\": 3}</function>"));
	/* nothing closed yet, or a format without closing tags */
	assert_int_equal(lg_chat_complete_prefix(LG_CHAT_HERMES, "<tool_call>\n{\"na", 16), 0);
	assert_int_equal(lg_chat_complete_prefix(LG_CHAT_LLAMA3, two, strlen(two)), 0);
	assert_int_equal(lg_chat_complete_prefix(LG_CHAT_HERMES, "", 0), 0);
}

/* Text, and calls that do not parse, are content with no tool_calls. */
static void
test_parse_text_and_malformed(void **state)
{
	static const struct
	{
		lg_chat_format f;
		const char *text;
	}			cases[] = {
		{LG_CHAT_HERMES, "Just an answer."},
		{LG_CHAT_HERMES, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}\n</tool_call>"},
		{LG_CHAT_HERMES, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}"},
		{LG_CHAT_HERMES, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call> and more"},
		{LG_CHAT_LLAMA3, "{\"name\": \"add\"}"},
		{LG_CHAT_LLAMA3, "{\"value\": 3}"},
		{LG_CHAT_MISTRAL, "[TOOL_CALLS][]"},
		{LG_CHAT_MISTRAL, "[TOOL_CALLS]{\"name\": \"add\"}"},
		{LG_CHAT_FUNCTIONARY, "<function=add>{\"a\": 1</function>"},
		{LG_CHAT_COMMAND_R, "Action: nothing"},
		{LG_CHAT_GENERIC, "{\"answer\": 42}"},
		/* the grammar left text that does not start with the marker free: never a call */
		{LG_CHAT_LLAMA3, " {\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}"},
		{LG_CHAT_DEEPSEEK_R1, DS_CALLS_BEGIN "garbage"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		int			n = -1;
		lg_json_node *msg = parse(cases[i].f, cases[i].text, &n);

		if (n != 0)
			fail_msg("case %zu: %d calls found in %s", i, n, cases[i].text);
		assert_string_equal(lg_json_get_str(msg, "content"), cases[i].text);
		assert_null(lg_json_get(msg, "tool_calls"));
		lg_json_node_free(msg);
	}
	/* with tool_choice "none" nothing is read as a call, whatever it looks like */
	{
		lg_buf		b;
		lg_error	err;
		lg_json_node *msg;

		lg_buf_init(&b);
		assert_int_equal(lg_chat_content_message(samples[0].weather, strlen(samples[0].weather), &b, &err), LG_OK);
		msg = lg_json_parse(b.data, b.len, &err);
		assert_non_null(msg);
		assert_string_equal(lg_json_get_str(msg, "content"), samples[0].weather);
		assert_null(lg_json_get(msg, "tool_calls"));
		lg_json_node_free(msg);
		lg_buf_free(&b);
	}
}

/* Tools described in the first message for templates that ignore them. */
static void
test_messages_with_tools(void **state)
{
	static const char sys_msgs[] = "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}]";
	static const char user_msgs[] = "[{\"role\": \"user\", \"content\": \"Hi\", \"name\": \"x\"}]";
	lg_buf		b;
	lg_error	err;
	lg_json_node *m;
	const char *c;

	/* a system message gets the note after its text; the rest is unchanged */
	lg_buf_init(&b);
	assert_int_equal(lg_chat_messages_with_tools(sys_msgs, strlen(sys_msgs), tools_json, strlen(tools_json), &b, &err), LG_OK);
	m = lg_json_parse(b.data, b.len, &err);
	assert_non_null(m);
	assert_int_equal(m->n, 2);
	c = lg_json_get_str(lg_json_at(m, 0), "content");
	assert_int_equal(strncmp(c, "Be brief.\n\n", 11), 0);
	assert_non_null(strstr(c, "get_weather"));
	assert_non_null(strstr(c, "\"tool_call\""));
	assert_string_equal(lg_json_get_str(lg_json_at(m, 1), "content"), "Hi");
	assert_true(lg_chat_prompt_shows_tools(c, strlen(c), tools_json, strlen(tools_json)));
	lg_json_node_free(m);
	lg_buf_free(&b);

	/* otherwise the note goes before the first message's text; other members stay */
	lg_buf_init(&b);
	assert_int_equal(lg_chat_messages_with_tools(user_msgs, strlen(user_msgs), tools_json, strlen(tools_json), &b, &err), LG_OK);
	m = lg_json_parse(b.data, b.len, &err);
	assert_non_null(m);
	c = lg_json_get_str(lg_json_at(m, 0), "content");
	assert_int_equal(strncmp(c, "You can call these tools", 24), 0);
	assert_int_equal(strcmp(c + strlen(c) - 4, "\n\nHi"), 0);
	assert_string_equal(lg_json_get_str(lg_json_at(m, 0), "name"), "x");
	assert_string_equal(lg_json_get_str(lg_json_at(m, 0), "role"), "user");
	lg_json_node_free(m);
	lg_buf_free(&b);

	assert_false(lg_chat_prompt_shows_tools("Hi", 2, tools_json, strlen(tools_json)));
	lg_buf_init(&b);
	assert_int_equal(lg_chat_messages_with_tools("[]", 2, tools_json, strlen(tools_json), &b, &err), LG_ERR_ARG);
	assert_int_equal(lg_chat_messages_with_tools(user_msgs, strlen(user_msgs), "{", 1, &b, &err), LG_ERR_ARG);
	lg_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect_fixtures),
		cmocka_unit_test(test_grammar_required),
		cmocka_unit_test(test_grammar_auto),
		cmocka_unit_test(test_grammar_none_and_response_format),
		cmocka_unit_test(test_grammar_errors),
		cmocka_unit_test(test_parse_calls),
		cmocka_unit_test(test_parse_text_and_malformed),
		cmocka_unit_test(test_complete_prefix),
		cmocka_unit_test(test_messages_with_tools),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
