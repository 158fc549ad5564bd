/*
 * test_json_schema.c — the JSON Schema → GBNF compiler: every keyword
 * compiled and checked against instances through the real grammar matcher
 * (accepted byte by byte and complete at the end, or refused), errors
 * with their locations, recursion, numeric bounds, patterns and formats.
 */
#include "test_util.h"

#include "grammar.h"
#include "json_schema.h"

/* Compile schema; the GBNF (caller frees) or NULL with err filled. */
static char *
compile(const char *schema, bool compact, bool strict, lg_error *err)
{
	lg_buf		out;
	lg_json_schema_opts o = {.compact = compact, .strict_additional = strict};

	lg_buf_init(&out);
	if (lg_json_schema_to_gbnf(schema, strlen(schema), &o, &out, err) != LG_OK)
	{
		lg_buf_free(&out);
		return NULL;
	}
	return out.data;
}

/* Does the compiled grammar accept text exactly? */
static bool
matches(const char *gbnf, const char *text)
{
	lg_error	err;
	lg_grammar *g = lg_grammar_parse(gbnf, strlen(gbnf), &err);
	lg_grammar_matcher *m;
	bool		ok;

	if (g == NULL)
		fail_msg("generated GBNF does not parse: %s\n%s", err.msg, gbnf);
	m = lg_grammar_matcher_new(g, NULL, &err);
	assert_non_null(m);
	ok = lg_grammar_matcher_accept_bytes(m, text, strlen(text)) && lg_grammar_matcher_is_complete(m);
	lg_grammar_matcher_free(m);
	lg_grammar_free(g);
	return ok;
}

/* Every text in good is accepted, every text in bad refused (NULL-terminated lists). */
static void
check_opts(const char *schema, bool compact, bool strict, const char *const *good, const char *const *bad)
{
	lg_error	err;
	char	   *gbnf = compile(schema, compact, strict, &err);

	if (gbnf == NULL)
		fail_msg("schema %s: %s", schema, err.msg);
	for (int i = 0; good && good[i]; i++)
		if (!matches(gbnf, good[i]))
			fail_msg("schema %s refuses valid %s\n%s", schema, good[i], gbnf);
	for (int i = 0; bad && bad[i]; i++)
		if (matches(gbnf, bad[i]))
			fail_msg("schema %s accepts invalid %s\n%s", schema, bad[i], gbnf);
	free(gbnf);
}

#define GOOD(...) ((const char *const[]) {__VA_ARGS__, NULL})
#define BAD(...) ((const char *const[]) {__VA_ARGS__, NULL})

static void
check(const char *schema, const char *const *good, const char *const *bad)
{
	check_opts(schema, false, false, good, bad);
}

/* The schema is refused with this status and a message containing part. */
static void
expect_error(const char *schema, lg_status st, const char *part)
{
	lg_error	err;
	char	   *gbnf = compile(schema, false, false, &err);

	if (gbnf != NULL)
		fail_msg("schema %s compiled, expected an error containing \"%s\"\n%s", schema, part, gbnf);
	if (err.status != st)
		fail_msg("schema %s: status %s, want %s (%s)", schema, lg_status_name(err.status), lg_status_name(st), err.msg);
	if (strstr(err.msg, part) == NULL)
		fail_msg("schema %s: message \"%s\" lacks \"%s\"", schema, err.msg, part);
}

static void
test_types(void **state)
{
	(void) state;
	check("{\"type\":\"string\"}", GOOD("\"\"", "\"a b\"", "\"\\u00e9\\n\"", "\"\xc3\xa9\""), BAD("1", "\"a", "\"\n\"", "null"));
	check("{\"type\":\"integer\"}", GOOD("0", "-12", "123456789"), BAD("1.5", "01", "-", "1e3", "\"1\""));
	check("{\"type\":\"number\"}", GOOD("0", "-1.25", "1e-05", "3.0E+2"), BAD(".5", "1.", "--1", "NaN"));
	check("{\"type\":\"boolean\"}", GOOD("true", "false"), BAD("1", "True"));
	check("{\"type\":\"null\"}", GOOD("null"), BAD("nul", "0"));
	check("{\"type\":[\"string\",\"null\"]}", GOOD("\"x\"", "null"), BAD("1", "true"));
	check("true", GOOD("1", "{\"a\": [1, {\"b\": null}]}", "\"s\""), BAD("{", "tru"));
	check("{}", GOOD("[]", "{}", "-0.5"), BAD("[", "}"));
	/* without "type", keywords constrain only the types they apply to */
	check("{\"properties\":{\"a\":{\"type\":\"integer\"}},\"minLength\":2,\"format\":\"date\"}",
		  GOOD("{\"a\":1}", "\"2024-01-01\"", "3", "[1]", "null"), BAD("{\"a\":\"x\"}", "\"x\""));
}

static void
test_objects(void **state)
{
	(void) state;
	/* schema order, required and optional, additional allowed by default (after the declared ones) */
	check("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}",
		  GOOD("{\"b\":\"x\"}", "{\"a\": 1, \"b\": \"x\"}", "{\"a\":1,\"b\":\"x\",\"c\":[1]}", "{\n  \"a\": 1,\n  \"b\": \"x\"\n}"),
		  BAD("{}", "{\"a\":1}", "{\"b\":\"x\",\"a\":1}", "{\"b\":1}", "{\"b\":\"x\",\"b\":\"y\"}", "{\"b\":\"x\",\"a\":2}"));
	/* additionalProperties false, and strict mode for absent */
	check("{\"properties\":{\"a\":{\"const\":1}},\"additionalProperties\":false}",
		  GOOD("{}", "{\"a\":1}"), BAD("{\"a\":1,\"b\":2}", "{\"b\":2}", "{\"a\":2}"));
	check_opts("{\"properties\":{\"a\":{\"const\":1}}}", false, true, GOOD("{\"a\":1}", "{}"), BAD("{\"a\":1,\"b\":2}"));
	/* additionalProperties as a schema; the extra names exclude the declared ones */
	check("{\"properties\":{\"id\":{\"type\":\"integer\"}},\"additionalProperties\":{\"type\":\"string\"}}",
		  GOOD("{\"id\":1,\"x\":\"y\"}", "{\"i\":\"a\",\"idx\":\"b\"}", "{\"\":\"e\"}"),
		  BAD("{\"x\":1}", "{\"id\":1,\"id\":\"s\"}", "{\"x\":\"y\",\"id\":1}"));
	/* a pattern with no writable complement: other names get every pattern's schema too */
	check("{\"type\":\"object\",\"patternProperties\":{\"/.*/\":{\"type\":\"array\",\"minItems\":2,\"maxItems\":2}}}",
		  GOOD("{\"x\": [1, 2]}", "{\"a/b/\": [1, 2], \"c\": [3, 4]}"), BAD("{\"a/b/\": [1]}", "{\"x\": 3}"));
	/* patternProperties */
	check("{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}},\"additionalProperties\":false}",
		  GOOD("{\"x-a\":1,\"x-\":2}", "{}"), BAD("{\"y\":1}", "{\"x-a\":\"s\"}"));
	/* a declared name the pattern matches is never written as a pattern-named member */
	check("{\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":\"^[a-f]{4}$\"}},\"patternProperties\":{\"^[a-z]{1,5}$\":{\"type\":[\"integer\",\"string\"]}},\"additionalProperties\":false}",
		  GOOD("{\"id\":\"abcd\",\"i\":1,\"idx\":2}", "{\"ide\":3}"), BAD("{\"id\":7}", "{\"id\":\"abc\"}", "{\"abcdef\":1}"));
	/* a pattern matching every name, and declared names with the same schema: duplicates are harmless */
	check("{\"properties\":{\"d\":{\"type\":\"string\",\"title\":\"t\"}},\"patternProperties\":{\".*\":{\"type\":\"string\"}},\"required\":[\"d\"]}",
		  GOOD("{\"d\":\"x\",\"p\":\"y\"}"), BAD("{\"d\":\"x\",\"p\":1}", "{\"p\":\"y\"}"));
	check("{\"properties\":{\"d\":{\"type\":\"string\",\"maxLength\":1}},\"patternProperties\":{\".*\":{\"type\":\"string\"}}}",
		  GOOD("{\"d\":\"x\",\"p\":\"yy\"}"), BAD("{\"d\":\"x\",\"d\":\"yy\"}"));
	check("{\"required\":[\"line1\"],\"patternProperties\":{\"^line[1-3]$\":{\"type\":\"string\"}},\"additionalProperties\":false}",
		  GOOD("{\"line1\":\"a\",\"line2\":\"b\"}"), BAD("{\"line2\":\"b\"}", "{\"line1\":\"a\",\"line4\":\"b\"}"));
	check("{\"patternProperties\":{\"^w+\":{\"type\":\"integer\"}}}", GOOD("{\"ww\":1,\"h\":\"s\"}"), BAD("{\"wx\":\"s\"}"));
	/* other names next to a prefix pattern and declared names: neither */
	check("{\"properties\":{\"a\":{\"type\":\"integer\"}},\"patternProperties\":{\"^x_\":{\"type\":\"string\"}}}",
		  GOOD("{\"a\":1,\"b\":[],\"x_1\":\"s\",\"x\":1}"), BAD("{\"x_1\":1}", "{\"a\":1,\"a\":\"s\"}"));
	/* other names next to one simple pattern: those it does not match */
	check("{\"patternProperties\":{\"^[a-z]+$\":{\"type\":\"integer\"}}}",
		  GOOD("{\"ab\":1,\"Xy\":\"s\",\"\":null}"), BAD("{\"ab\":\"s\"}"));
	check("{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}}}",
		  GOOD("{\"x-a\":1,\"y\":\"s\",\"x\":\"t\",\"xy\":[]}"), BAD("{\"x-a\":\"s\"}", "{\"x-\":\"s\"}"));
	/* min/maxProperties */
	check("{\"type\":\"object\",\"minProperties\":1,\"maxProperties\":2}",
		  GOOD("{\"a\":1}", "{\"a\":1,\"b\":2}"), BAD("{}", "{\"a\":1,\"b\":2,\"c\":3}"));
	check("{\"properties\":{\"a\":{},\"b\":{}},\"minProperties\":1,\"additionalProperties\":false}",
		  GOOD("{\"a\":1}", "{\"b\":1}", "{\"a\":1,\"b\":2}"), BAD("{}"));
	/* an optional property whose schema accepts nothing can only be absent */
	check("{\"properties\":{\"s\":{\"type\":\"array\",\"enum\":[\"a\"]},\"t\":{\"type\":\"integer\"}}}",
		  GOOD("{\"t\":1}", "{}"), BAD("{\"s\":[]}", "{\"s\":\"a\"}"));
	/* a required name not declared takes the additionalProperties schema */
	check("{\"required\":[\"k\"],\"additionalProperties\":{\"type\":\"boolean\"}}",
		  GOOD("{\"k\":true}", "{\"k\":false,\"z\":true}"), BAD("{}", "{\"k\":1}"));
	/* extra names next to declared names with escapes */
	check("{\"properties\":{\"^\\\\w+$\":{},\"a\\\"b\":{\"type\":\"integer\"}}}",
		  GOOD("{\"w1\":1}", "{\"a\\\"b\":1,\"a\\\"c\":\"s\"}", "{\"x\\\\y\":1}"), BAD("{\"a\\\"b\":\"x\"}"));
	/* escaped names */
	check("{\"properties\":{\"a\\\"b\":{\"type\":\"null\"}},\"required\":[\"a\\\"b\"]}", GOOD("{\"a\\\"b\":null}"), BAD("{\"a\"b\":null}"));
}

static void
test_whitespace(void **state)
{
	lg_error	err;
	char	   *gbnf;
	char		deep[128];

	(void) state;
	/* one newline and up to 40 blanks; no more */
	snprintf(deep, sizeof(deep), "[\n%40s1]", "");
	check("{\"type\":\"array\"}", GOOD("[ 1 , 2 ]", "[\n\t1\n]", deep), BAD("[  1]", "[\n\n1]"));
	snprintf(deep, sizeof(deep), "[\n%41s1]", "");
	check("{\"type\":\"array\"}", GOOD("[1]"), BAD(deep, " [1]", "[1] "));
	check_opts("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\"}}}", true, false,
			   GOOD("{\"a\":[1,2]}", "{}"), BAD("{\"a\": [1]}", "{ }", "{\"a\":[1, 2]}"));
	gbnf = compile("{\"type\":\"object\"}", true, false, &err);
	assert_non_null(gbnf);
	assert_null(strstr(gbnf, "ws"));
	free(gbnf);
}

static void
test_arrays(void **state)
{
	(void) state;
	check("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3}",
		  GOOD("[1]", "[1, 2, 3]", "[ 1 ]"), BAD("[]", "[1,2,3,4]", "[\"a\"]", "[1,]"));
	check("{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}",
		  GOOD("[]", "[\"a\"]", "[\"a\",1]"), BAD("[1]", "[\"a\",1,2]"));
	check("{\"type\":\"array\",\"items\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"additionalItems\":{\"type\":\"boolean\"},\"minItems\":2}",
		  GOOD("[\"a\",1]", "[\"a\",1,true,false]"), BAD("[\"a\"]", "[\"a\",1,2]"));
	check("{\"type\":\"array\",\"maxItems\":0}", GOOD("[]", "[ ]"), BAD("[1]"));
	check("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2}", GOOD("[1,2]", "[1,2,3,4,5]"), BAD("[1]"));
}

static void
test_enum_const(void **state)
{
	(void) state;
	check("{\"enum\":[\"red\",\"green\",1,null,{\"a\":[1,2]}]}",
		  GOOD("\"red\"", "1", "null", "{\"a\": [1, 2]}", "{\"a\":[1,2]}"), BAD("\"blue\"", "2", "{\"a\":[2,1]}"));
	check("{\"type\":\"string\",\"enum\":[\"a\",1]}", GOOD("\"a\""), BAD("1"));
	check("{\"const\":\"say \\\"hi\\\"\\n\"}", GOOD("\"say \\\"hi\\\"\\n\""), BAD("\"say \"hi\"\""));
	expect_error("{\"type\":\"integer\",\"const\":\"x\"}", LG_ERR_UNSUPPORTED, "accepts no value");
}

static void
test_combinators(void **state)
{
	(void) state;
	check("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":2}]}", GOOD("1", "\"ab\""), BAD("\"abc\"", "null"));
	/* oneOf: different types, a discriminating const, distinct required names */
	check("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"boolean\"}]}", GOOD("1", "true"), BAD("\"x\""));
	check("{\"type\":\"object\",\"oneOf\":[{\"properties\":{\"k\":{\"const\":\"a\"},\"x\":{\"type\":\"integer\"}},\"required\":[\"k\"]},"
		  "{\"properties\":{\"k\":{\"const\":\"b\"}},\"required\":[\"k\"]}]}",
		  GOOD("{\"k\":\"a\",\"x\":1}", "{\"k\":\"b\"}"), BAD("{\"k\":\"c\"}"));
	check("{\"type\":\"object\",\"properties\":{\"r\":{\"type\":\"number\"},\"w\":{\"type\":\"number\"}},"
		  "\"oneOf\":[{\"required\":[\"r\"]},{\"required\":[\"w\"]}]}",
		  GOOD("{\"r\":1}", "{\"w\":2}"), BAD("{\"r\":1,\"w\":2}", "{}"));
	/* a branch whose required names include another's never matches alone */
	check("{\"type\":\"object\",\"properties\":{\"l\":{},\"r\":{},\"h\":{}},\"additionalProperties\":false,"
		  "\"oneOf\":[{\"required\":[\"l\"]},{\"required\":[\"r\"]},{\"required\":[\"r\",\"h\"]}]}",
		  GOOD("{\"l\":1}", "{\"r\":1}"), BAD("{\"r\":1,\"h\":2}", "{\"l\":1,\"r\":1}", "{}"));
	/* the discriminator's values are those of the base and the branch together */
	check("{\"type\":\"object\",\"properties\":{\"s\":{\"enum\":[\"sq\",\"ci\"]}},\"required\":[\"s\"],"
		  "\"oneOf\":[{\"properties\":{\"s\":{\"enum\":[\"sq\"]}}},{\"properties\":{\"s\":{\"enum\":[\"ci\"]}}}]}",
		  GOOD("{\"s\":\"sq\"}", "{\"s\":\"ci\"}"), BAD("{\"s\":\"tr\"}"));
	/* a discriminating property neither requires: required in both */
	check("{\"type\":\"object\",\"oneOf\":[{\"properties\":{\"t\":{\"enum\":[\"a\"]}}},{\"properties\":{\"t\":{\"enum\":[\"b\",\"c\"]}}}]}",
		  GOOD("{\"t\":\"a\"}", "{\"t\":\"c\",\"x\":1}"), BAD("{}", "{\"t\":\"d\"}"));
	/* discriminating enums inside allOf (base type and branch enum merged) */
	check("{\"type\":\"object\",\"properties\":{\"g\":{\"type\":\"string\"}},\"additionalProperties\":false,"
		  "\"oneOf\":[{\"properties\":{\"g\":{\"enum\":[\"x\"]}},\"required\":[\"g\"]},{\"properties\":{\"g\":{\"enum\":[\"y\"]}},\"required\":[\"g\"]}]}",
		  GOOD("{\"g\":\"x\"}", "{\"g\":\"y\"}"), BAD("{\"g\":\"z\"}", "{}"));
	expect_error("{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"string\",\"maxLength\":3}]}", LG_ERR_UNSUPPORTED,
				 "\"oneOf\" at #: branches 0 and 1 may both match");
	/* closed objects with different names: each side must hold one of its own */
	check("{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"a\":{}},\"additionalProperties\":false},"
		  "{\"type\":\"object\",\"properties\":{\"b\":{}},\"additionalProperties\":false}]}",
		  GOOD("{\"a\":1}", "{\"b\":2}"), BAD("{}", "{\"a\":1,\"b\":2}"));
	/* enum values in two branches match both: dropped */
	check("{\"oneOf\":[{\"enum\":[\"x\",\"y\"]},{\"enum\":[\"y\",\"z\"]}]}", GOOD("\"x\"", "\"z\""), BAD("\"y\""));
	/* a branch without "type" accepts every type: a string matches it too */
	expect_error("{\"oneOf\":[{\"properties\":{\"a\":{}}},{\"type\":\"string\"}]}", LG_ERR_UNSUPPORTED, "may both match");
	check("{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"a\":{}}},{\"type\":\"string\"}]}", GOOD("{}", "\"s\""), BAD("1"));
	/* integer and number overlap */
	expect_error("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", LG_ERR_UNSUPPORTED, "oneOf");
	/* allOf merges properties, required and bounds */
	check("{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":0}},\"required\":[\"a\"]},"
		  "{\"properties\":{\"a\":{\"maximum\":9},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}",
		  GOOD("{\"a\":0,\"b\":\"\"}", "{\"a\":9,\"b\":\"x\"}"), BAD("{\"a\":10,\"b\":\"\"}", "{\"a\":1}", "{\"b\":\"x\"}"));
	check("{\"allOf\":[{\"type\":[\"string\",\"integer\"]},{\"type\":[\"integer\",\"null\"]}]}", GOOD("1"), BAD("\"a\"", "null"));
	expect_error("{\"allOf\":[{\"pattern\":\"^a\"},{\"pattern\":\"b$\"}]}", LG_ERR_UNSUPPORTED, "two different \"pattern\"");
	/* dependencies: the trigger needs its dependents */
	check("{\"properties\":{\"c\":{\"type\":\"number\"},\"a\":{\"type\":\"number\"}},\"dependencies\":{\"c\":[\"a\"],\"a\":[\"c\"]},\"additionalProperties\":false}",
		  GOOD("{}", "{\"c\":1,\"a\":2}"), BAD("{\"c\":1}", "{\"a\":2}"));
	check("{\"properties\":{\"n\":{\"type\":\"string\"},\"m\":{}},\"dependentSchemas\":{\"n\":{\"required\":[\"m\"]}}}",
		  GOOD("{\"n\":\"x\",\"m\":1}", "{\"m\":1}"), BAD("{\"n\":\"x\"}"));
}

static void
test_refs(void **state)
{
	(void) state;
	check("{\"$defs\":{\"n\":{\"type\":\"integer\"}},\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}", GOOD("[1,2]"), BAD("[\"a\"]"));
	check("{\"definitions\":{\"a/b\":{\"const\":1},\"c~d\":{\"const\":2},\"e f\":{\"const\":3}},"
		  "\"properties\":{\"x\":{\"$ref\":\"#/definitions/a~1b\"},\"y\":{\"$ref\":\"#/definitions/c~0d\"},\"z\":{\"$ref\":\"#/definitions/e%20f\"}},\"additionalProperties\":false}",
		  GOOD("{\"x\":1,\"y\":2,\"z\":3}"), BAD("{\"x\":2}"));
	/* recursion: a tree */
	check("{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}},\"required\":[\"v\"],\"additionalProperties\":false}",
		  GOOD("{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{\"v\":3}]},{\"v\":4}]}"), BAD("{\"v\":1,\"kids\":[{}]}"));
	/* $id-relative and anchors */
	check("{\"$id\":\"http://x.org/s.json\",\"definitions\":{\"a\":{\"$id\":\"#A\",\"type\":\"boolean\"}},"
		  "\"properties\":{\"p\":{\"$ref\":\"http://x.org/s.json#/definitions/a\"},\"q\":{\"$ref\":\"#A\"}},\"additionalProperties\":false}",
		  GOOD("{\"p\":true,\"q\":false}"), BAD("{\"p\":1}"));
	/* $ref with siblings: both apply from 2019-09 on, only the $ref before */
	check("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$defs\":{\"s\":{\"type\":\"string\"}},\"$ref\":\"#/$defs/s\",\"maxLength\":2}",
		  GOOD("\"ab\""), BAD("\"abc\"", "1"));
	check("{\"definitions\":{\"s\":{\"type\":\"string\"}},\"properties\":{\"p\":{\"$ref\":\"#/definitions/s\",\"type\":\"integer\"}}}",
		  GOOD("{\"p\":\"abc\"}"), BAD("{\"p\":1}"));
	expect_error("{\"$ref\":\"#\"}", LG_ERR_UNSUPPORTED, "unsupported recursion at #");
	expect_error("{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":\"null\"}]}", LG_ERR_UNSUPPORTED, "recursion");
	expect_error("{\"$ref\":\"other.json#/a\"}", LG_ERR_UNSUPPORTED, "remote reference \"other.json#/a\"");
	/* bounds beyond what the grammar engine counts are refused, never relaxed (found by fuzzing) */
	expect_error("{\"maxLength\":6666664}", LG_ERR_UNSUPPORTED,
				 "unsupported \"maxLength\" at #: 6666664 is above the largest bound");
	expect_error("{\"type\":\"string\",\"maxLength\":6.7e74}", LG_ERR_UNSUPPORTED, "\"maxLength\"");
	expect_error("{\"type\":\"array\",\"minItems\":1e300}", LG_ERR_UNSUPPORTED, "\"minItems\"");
	expect_error("{\"type\":\"object\",\"maxProperties\":2000000}", LG_ERR_UNSUPPORTED, "\"maxProperties\"");
	expect_error("{\"type\":\"string\",\"minLength\":1.5}", LG_ERR_FORMAT, "not a non-negative integer");
	expect_error("{\"properties\":{\"a\":{\"$ref\":\"#/definitions/missing\"}}}", LG_ERR_FORMAT,
				 "\"$ref\" at #/properties/a: no such location");
}

static void
test_strings(void **state)
{
	(void) state;
	/* lengths count code points of the decoded value */
	check("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
		  GOOD("\"ab\"", "\"\xc3\xa9\xc3\xa9\"", "\"a\\n\"", "\"\\u00e9bc\""), BAD("\"a\"", "\"abcd\"", "\"\\n\"", "\"\\ud83d\\ude00\""));
	/* pattern: search semantics unless anchored */
	check("{\"type\":\"string\",\"pattern\":\"b+c\"}", GOOD("\"abbcd\"", "\"bc\""), BAD("\"ac\"", "\"\""));
	check("{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9_]*$\"}", GOOD("\"a\"", "\"ab_1\""), BAD("\"1a\"", "\"a-b\"", "\"\""));
	check("{\"type\":\"string\",\"pattern\":\"^(?:foo|ba(r|z)){1,2}?$\"}", GOOD("\"foo\"", "\"barfoo\"", "\"baz\""), BAD("\"ba\"", "\"foofoofoo\""));
	check("{\"type\":\"string\",\"pattern\":\"^\\\\d{3}-\\\\w\\\\s\\\\S\\\\D$\"}", GOOD("\"123-_ xy\""), BAD("\"12-a b1\"", "\"123-a  1\""));
	check("{\"type\":\"string\",\"pattern\":\"^[^\\\\\\\\\\\"]+$\"}", GOOD("\"abc\""), BAD("\"a\\\\b\"", "\"a\\\"b\""));
	check("{\"type\":\"string\",\"pattern\":\"^a.c$\"}", GOOD("\"abc\"", "\"a\\\"c\"", "\"a\\\\c\""), BAD("\"a\\nc\"", "\"ac\""));
	check("{\"type\":\"string\",\"pattern\":\"^[a-z]+$\",\"maxLength\":3}", GOOD("\"abc\""), BAD("\"abcd\"", "\"\""));
	check("{\"type\":\"string\",\"pattern\":\"^x[0-9]*$\",\"minLength\":3,\"maxLength\":4}", GOOD("\"x12\"", "\"x123\""), BAD("\"x1\"", "\"x1234\""));
	expect_error("{\"type\":\"string\",\"pattern\":\"^(?=a)\"}", LG_ERR_UNSUPPORTED, "lookaround");
	expect_error("{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}", LG_ERR_UNSUPPORTED, "backreference");
	/* search semantics with lengths: contains a match, length bounded */
	check("{\"type\":\"string\",\"pattern\":\"a+\",\"maxLength\":3}", GOOD("\"a\"", "\"xa\"", "\"aaa\"", "\"xya\""), BAD("\"xyz\"", "\"xyza\"", "\"\""));
	check("{\"type\":\"string\",\"pattern\":\"[0-9a-f]+\",\"minLength\":4,\"maxLength\":4}", GOOD("\"zzz0\"", "\"beef\""), BAD("\"zzzz\"", "\"abc\"", "\"abcde\""));
	/* lengths with a format: repetitions capped, a subset of the valid strings */
	check("{\"type\":\"string\",\"format\":\"email\",\"maxLength\":40}", GOOD("\"ab.c@mail.example.org\""), BAD("\"abcdefghijklmnopqrstuvwxyz@example.org.fr\"", "\"a@b\""));
	/* an explicit count ({0,9} words) is not cut to fit maxLength */
	expect_error("{\"type\":\"string\",\"pattern\":\"^(?:\\\\S+\\\\s+){0,9}\\\\S+$\",\"maxLength\":40}", LG_ERR_UNSUPPORTED, "minLength/maxLength");
	expect_error("{\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^a+b+$\",\"minLength\":5}}}", LG_ERR_UNSUPPORTED,
				 "\"pattern\" at #/properties/s: pattern combined with minLength/maxLength");
	expect_error("{\"type\":\"string\",\"pattern\":\"a(b\"}", LG_ERR_UNSUPPORTED, "missing )");
}

static void
test_formats(void **state)
{
	(void) state;
	check("{\"type\":\"string\",\"format\":\"date\"}", GOOD("\"2024-02-28\"", "\"1999-12-31\""), BAD("\"2024-02-30\"", "\"2024-13-01\"", "\"24-01-01\""));
	check("{\"type\":\"string\",\"format\":\"date-time\"}", GOOD("\"2024-01-31T23:59:59Z\"", "\"2024-01-31T00:00:00.123+05:30\""),
		  BAD("\"2024-01-31 23:59:59\"", "\"2024-01-31T24:00:00Z\"", "\"2024-01-31T10:00:00\""));
	check("{\"type\":\"string\",\"format\":\"time\"}", GOOD("\"10:20:30Z\"", "\"10:20:30.5-01:00\""), BAD("\"10:20\""));
	check("{\"type\":\"string\",\"format\":\"uuid\"}", GOOD("\"123e4567-e89b-12d3-a456-426614174000\""), BAD("\"123e4567e89b12d3a456426614174000\""));
	check("{\"type\":\"string\",\"format\":\"email\"}", GOOD("\"a.b+c@example.co\""), BAD("\"a@b\"", "\"@x.org\"", "\"a b@x.org\""));
	check("{\"type\":\"string\",\"format\":\"ipv4\"}", GOOD("\"192.168.0.1\"", "\"0.0.0.0\""), BAD("\"256.1.1.1\"", "\"1.2.3\"", "\"01.2.3.4\""));
	check("{\"type\":\"string\",\"format\":\"ipv6\"}", GOOD("\"::1\"", "\"2001:db8::8a2e:370:7334\"", "\"1:2:3:4:5:6:7:8\"", "\"::\""),
		  BAD("\"1:2:3:4:5:6:7:8:9\"", "\"12345::\"", "\":1\""));
	check("{\"type\":\"string\",\"format\":\"hostname\"}", GOOD("\"a.example-1.com\"", "\"localhost\""), BAD("\"-a.com\"", "\"a..b\""));
	check("{\"type\":\"string\",\"format\":\"uri\"}", GOOD("\"https://x.org/a?b=c#d\"", "\"urn:isbn:123\""), BAD("\"/relative\"", "\"a b:c\""));
	check("{\"type\":\"string\",\"format\":\"uri-reference\"}", GOOD("\"/relative/path\"", "\"https://x\""), BAD("\"a b\""));
	check("{\"type\":\"string\",\"format\":\"duration\"}", GOOD("\"P3Y6M4DT12H30M5S\"", "\"PT0.5S\"", "\"P2W\""), BAD("\"P\"", "\"PT\"", "\"3D\""));
	/* formats outside the spec are annotations */
	check("{\"type\":\"string\",\"format\":\"my-custom\"}", GOOD("\"anything\""), BAD("1"));
	expect_error("{\"type\":\"string\",\"format\":\"iri\"}", LG_ERR_UNSUPPORTED, "unsupported format \"iri\" at #");
	expect_error("{\"type\":\"string\",\"format\":\"date\",\"pattern\":\"^2\"}", LG_ERR_UNSUPPORTED, "pattern and format");
}

static void
test_integers(void **state)
{
	(void) state;
	check("{\"type\":\"integer\",\"minimum\":-15,\"maximum\":123}",
		  GOOD("-15", "-9", "0", "7", "99", "100", "123"), BAD("-16", "124", "200", "-100", "1000"));
	check("{\"type\":\"integer\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":10}", GOOD("1", "9"), BAD("0", "10", "-1"));
	check("{\"type\":\"integer\",\"minimum\":5,\"exclusiveMinimum\":true}", GOOD("6", "1000000"), BAD("5", "0", "-7"));
	check("{\"type\":\"integer\",\"maximum\":-3}", GOOD("-3", "-40", "-1000000"), BAD("-2", "0", "5"));
	check("{\"type\":\"integer\",\"minimum\":1000}", GOOD("1000", "9999", "10000", "12345678901"), BAD("999", "0", "-5"));
	check("{\"type\":\"integer\",\"minimum\":-1.5,\"maximum\":2.5}", GOOD("-1", "0", "2"), BAD("-2", "3"));
	check("{\"type\":\"integer\",\"multipleOf\":5,\"minimum\":0,\"maximum\":20}", GOOD("0", "15", "20"), BAD("3", "25"));
	expect_error("{\"type\":\"integer\",\"multipleOf\":5}", LG_ERR_UNSUPPORTED, "\"multipleOf\" at #");
	expect_error("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", LG_ERR_UNSUPPORTED, "accepts no integer");
}

static void
test_numbers(void **state)
{
	(void) state;
	check("{\"type\":\"number\",\"minimum\":0.5,\"exclusiveMaximum\":2.25}",
		  GOOD("0.5", "0.75", "1", "1.99", "2", "2.2", "2.249"), BAD("0.49", "0", "2.25", "2.5", "3", "-1"));
	check("{\"type\":\"number\",\"minimum\":-2.5,\"maximum\":-0.5}", GOOD("-2.5", "-1", "-0.5", "-2.25"), BAD("-2.51", "-0.4", "0", "1"));
	check("{\"type\":\"number\",\"exclusiveMinimum\":0}", GOOD("0.1", "5", "0.0001"), BAD("0", "0.0", "-1"));
	check("{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", GOOD("0", "0.0", "1", "1.0", "0.999"), BAD("1.01", "-0.1", "2"));
	check("{\"type\":\"number\",\"maximum\":100}", GOOD("100", "-5.5", "99.99"), BAD("100.5", "101"));
	check("{\"type\":\"number\",\"multipleOf\":0.01}", GOOD("1.25", "3"), BAD("1.255"));
	check("{\"type\":\"number\",\"multipleOf\":0.01,\"exclusiveMinimum\":0,\"maximum\":99.99}",
		  GOOD("0.01", "0.15", "5", "99.99", "99.9"), BAD("0", "0.001", "100", "1.234", "0.00"));
}

static void
test_unsupported(void **state)
{
	(void) state;
	expect_error("{\"properties\":{\"tags\":{\"type\":\"array\",\"uniqueItems\":true}}}", LG_ERR_UNSUPPORTED,
				 "unsupported keyword \"uniqueItems\" at #/properties/tags");
	check("{\"type\":\"array\",\"uniqueItems\":false}", GOOD("[1,1]"), NULL);
	expect_error("{\"items\":{\"not\":{\"pattern\":\"a\"}}}", LG_ERR_UNSUPPORTED, "unsupported keyword \"not\" at #/items/not");
	/* the forms of "not" that have a positive equivalent */
	check("{\"not\":{\"type\":[\"string\",\"number\"]}}", GOOD("null", "[1]", "{}", "true"), BAD("\"s\"", "1", "1.5"));
	check("{\"properties\":{\"a\":{},\"b\":{}},\"not\":{\"required\":[\"a\",\"b\"]}}", GOOD("{\"a\":1}", "{\"b\":1}", "{}"), BAD("{\"a\":1,\"b\":2}"));
	check("{\"properties\":{\"a\":{},\"b\":{}},\"not\":{\"anyOf\":[{\"required\":[\"a\"]},{\"required\":[\"b\"]}]}}", GOOD("{}", "{\"c\":1}"), BAD("{\"a\":1}", "{\"b\":1}"));
	check("{\"properties\":{\"x\":{\"not\":{}}},\"additionalProperties\":{\"type\":\"integer\"}}", GOOD("{\"y\":1}", "{}"), BAD("{\"x\":1}"));
	expect_error("{\"if\":{\"type\":\"string\"},\"then\":{\"maxLength\":1}}", LG_ERR_UNSUPPORTED, "\"if\" at #");
	expect_error("{\"type\":\"array\",\"contains\":{\"type\":\"integer\"}}", LG_ERR_UNSUPPORTED, "\"contains\"");
	expect_error("{\"propertyNames\":{\"maxLength\":3}}", LG_ERR_UNSUPPORTED, "\"propertyNames\"");
	/* annotations and unknown keywords are ignored */
	check("{\"type\":\"integer\",\"title\":\"t\",\"description\":\"d\",\"default\":1,\"examples\":[1],\"_format\":\"x\",\"readOnly\":true,\"deprecated\":true}",
		  GOOD("1"), BAD("\"1\""));
	expect_error("{\"type\":\"strin\"}", LG_ERR_FORMAT, "unknown type \"strin\"");
	/* also where the property is optional, so the value could simply leave it out */
	expect_error("{\"properties\":{\"a\":{\"type\":\"frobnicate\"}}}", LG_ERR_FORMAT, "unknown type \"frobnicate\" at #/properties/a");
	expect_error("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":[\"string\",3]}]}", LG_ERR_FORMAT, "unknown type in \"type\"");
	expect_error("{\"type\":", LG_ERR_FORMAT, "not valid JSON");
	expect_error("[1]", LG_ERR_FORMAT, "not an object or boolean");
	expect_error("false", LG_ERR_UNSUPPORTED, "accepts no value");
}

static void
test_prefix(void **state)
{
	lg_buf		out;
	lg_error	err;
	lg_json_schema_opts o = {.rule_prefix = "t1-"};
	const char *s1 = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}";
	const char *s2 = "{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}";
	lg_grammar *g;

	(void) state;
	lg_buf_init(&out);
	assert_int_equal(lg_json_schema_to_gbnf(s1, strlen(s1), &o, &out, &err), LG_OK);
	o.rule_prefix = "t2-";
	assert_int_equal(lg_json_schema_to_gbnf(s2, strlen(s2), &o, &out, &err), LG_OK);
	lg_buf_append(&out, "root ::= t1-root | t2-root\n", 27);
	/* every rule definition carries a prefix, except the root added here */
	for (const char *l = out.data; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, "root ::=", 8) != 0 && strncmp(l, "t1-", 3) != 0 && strncmp(l, "t2-", 3) != 0)
			fail_msg("rule without prefix: %.40s", l);
	g = lg_grammar_parse(out.data, out.len, &err);
	if (g == NULL)
		fail_msg("%s\n%s", err.msg, out.data);
	lg_grammar_free(g);
	assert_true(matches(out.data, "{\"a\": \"x\"}"));
	assert_true(matches(out.data, "[1, 2]"));
	assert_false(matches(out.data, "[\"x\"]"));
	lg_buf_free(&out);
	o.rule_prefix = "bad prefix";
	lg_buf_init(&out);
	assert_int_equal(lg_json_schema_to_gbnf(s1, strlen(s1), &o, &out, &err), LG_ERR_ARG);
	lg_buf_free(&out);
}

/*
 * Declared names far longer than a rule may nest (found by fuzzing): the
 * exclusion of a 300-character name spans several rules and still keeps
 * the declared name to its own schema; a name past JS_NAME_MAX allows no
 * additional members (a subset, never an invalid value).
 */
static void
test_long_names(void **state)
{
	char		name[301],
				schema[512],
				same[512],
				prefix[512],
				longer[512],
				other[512];
	char	   *huge = malloc(2100 * 2 + 200);

	memset(name, 'k', 300);
	name[300] = '\0';
	name[150] = '}';
	snprintf(schema, sizeof(schema), "{\"properties\":{\"%s\":{\"type\":\"integer\"}}}", name);
	snprintf(same, sizeof(same), "{\"%s\": \"x\"}", name);
	snprintf(prefix, sizeof(prefix), "{\"%.*s\": \"x\"}", 270, name);
	snprintf(longer, sizeof(longer), "{\"%sz\": \"x\"}", name);
	snprintf(other, sizeof(other), "{\"%s\": 7}", name);
	check(schema, GOOD(other, prefix, longer, "{\"a\": \"x\"}"), BAD(same));

	assert_non_null(huge);
	memset(huge, 0, 2100 * 2 + 200);
	strcpy(huge, "{\"properties\":{\"");
	memset(huge + strlen(huge), 'n', 2000);
	strcat(huge, "\":{\"type\":\"integer\"}}}");
	check(huge, GOOD("{}"), BAD("{\"a\": 1}"));
	free(huge);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_objects),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_enum_const),
		cmocka_unit_test(test_combinators),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_long_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
