/*
 * fuzz_json_schema.c — libFuzzer target for the JSON Schema compiler.
 *
 * Any input is compiled (default, compact with a rule prefix); when it
 * compiles, the GBNF must parse, and a matcher over it must take a few
 * bytes without crashing.  An error must carry a message.  Both checked
 * with a trap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"
#include "json_schema.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* Compile with o; a compiled grammar must parse and run. */
static void
one(const uint8_t *data, size_t size, const lg_json_schema_opts *o)
{
	lg_buf		out;
	lg_error	err;
	lg_status	st;

	lg_buf_init(&out);
	st = lg_json_schema_to_gbnf((const char *) data, size, o, &out, &err);
	/* with a prefix the start rule is <prefix>root: a grammar still starts at root */
	if (st == LG_OK && o->rule_prefix)
		CHECK(lg_buf_appendf(&out, "root ::= %sroot\n", o->rule_prefix));
	if (st == LG_OK)
	{
		lg_grammar *g = lg_grammar_parse(out.data, out.len, &err);
		lg_grammar_matcher *m;

		CHECK(g != NULL);
		m = lg_grammar_matcher_new(g, NULL, &err);
		if (m)
		{
			static const char *const probes[] = {"{\"a\": 1}", "[1, \"x\"]", "\"2024-01-01\"", "-1.5", "null"};

			for (int i = 0; i < 5; i++)
			{
				lg_grammar_matcher_reset(m);
				lg_grammar_matcher_accept_bytes(m, probes[i], strlen(probes[i]));
				(void) lg_grammar_matcher_is_complete(m);
			}
			lg_grammar_matcher_free(m);
		}
		lg_grammar_free(g);
	}
	else
		CHECK(err.msg[0] != '\0' && err.status == st);
	lg_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lg_json_schema_opts o = {0};

	if (size > 1 << 16)
		return 0;
	one(data, size, &o);
	o.compact = true;
	o.strict_additional = true;
	o.rule_prefix = "p-";
	one(data, size, &o);
	return 0;
}
