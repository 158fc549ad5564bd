/*
 * test_grammar.c — GBNF parsing (every fixture grammar, error messages),
 * the matcher (repetition bounds, Unicode classes, partial UTF-8, limits),
 * and token masks: the cached mask must equal the brute-force truth (does
 * accept_token succeed on a copy?) for every token of a real 32k vocabulary
 * on random grammar states, and EOG must be allowed exactly when complete.
 */
#include "test_util.h"

#include <dirent.h>
#include <pthread.h>

#include "gguf.h"
#include "grammar.h"
#include "vocab.h"

#define LLAMA_VOCAB "fixtures/tokenizer/ggml-vocab-llama-spm.gguf"

/* Parse a C-string grammar, failing the test with the message if it does not parse. */
static lg_grammar *
parse_ok(const char *src)
{
	lg_error	err;
	lg_grammar *g;

	lg_error_clear(&err);
	g = lg_grammar_parse(src, strlen(src), &err);
	if (g == NULL)
		fail_msg("grammar did not parse: %s\n%s", err.msg, src);
	return g;
}

enum { REJECTED, PREFIX, COMPLETE };

/* Feed s byte by byte: REJECTED, PREFIX (accepted, not complete) or COMPLETE. */
static int
feed(const lg_grammar *g, const char *s, size_t n)
{
	lg_grammar_matcher *m = lg_grammar_matcher_new(g, NULL, NULL);
	int			r = PREFIX;

	assert_non_null(m);
	for (size_t i = 0; i < n && r != REJECTED; i++)
		if (!lg_grammar_matcher_accept_bytes(m, s + i, 1))
			r = REJECTED;
	if (r != REJECTED && lg_grammar_matcher_is_complete(m))
		r = COMPLETE;
	lg_grammar_matcher_free(m);
	return r;
}

/* The same text fed in one call must give the same verdict as byte by byte. */
static void
expect(const lg_grammar *g, const char *s, int want)
{
	int			got = feed(g, s, strlen(s));
	lg_grammar_matcher *m = lg_grammar_matcher_new(g, NULL, NULL);
	bool		whole = lg_grammar_matcher_accept_bytes(m, s, strlen(s));

	if (got != want)
		fail_msg("\"%s\": got %s, want %s", s,
				 got == REJECTED ? "rejected" : got == PREFIX ? "prefix" : "complete",
				 want == REJECTED ? "rejected" : want == PREFIX ? "prefix" : "complete");
	assert_int_equal(whole, want != REJECTED);
	if (whole)
		assert_int_equal(lg_grammar_matcher_is_complete(m), want == COMPLETE);
	lg_grammar_matcher_free(m);
}

typedef struct fixture_case
{
	const char *file;
	const char *accept[4];		/* complete texts of the language */
	const char *reject[4];		/* near misses */
} fixture_case;

static const fixture_case fixture_cases[] = {
	{"arithmetic.gbnf", {"a+b=(c*2)\n", "x = 1\n", "x1=y2\nz=(a)\n"}, {"x == 1\n", "X=1\n", "x=1+\n"}},
	{"c.gbnf", {"int main(){return 0;}", "float f(int x){x = x*2;return x;}", ""},
	 {"int main(){return 0}", "int 9main(){}", "double f(){}"}},
	{"chess.gbnf", {"1. e4 e5\n2. Nf3 Nc6\n", "1. O-O O-O-O\n12. Qxd8+ Kxd8\n"}, {"1. e9 e5\n", "2. e4 e5\n", "1. Zf3 e5\n"}},
	{"english.gbnf", {"Hello, world!", "a b\tc\nd"}, {"h\xc3\xa9llo", " leading", "two  spaces"}},
	{"japanese.gbnf", {"\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf\xe3\x80\x81\xe4\xb8\x96\xe7\x95\x8c",
					   "\xe3\x82\xab\xe3\x82\xbf\xe3\x82\xab\xe3\x83\x8a"}, {"abc", "\xe3\x81\x93 a", "\xef\xbc\x81"}},
	{"json.gbnf", {"{}", "{\"a\": [1, 2.5e3, \"x\\n\", true, {\"b\": null}]}", "{\"k\":\"\\u00e9\\\"\"}\n  "},
	 {"{\"a\": tru}", "{\"a\":1,}", "[1]", "{\"a\": 01}"}},
	{"json_arr.gbnf", {"[\n]", "[\n1,\n{\"a\": \"b\"}]"}, {"[1]", "[\n1,2]", "[\n]x"}},
	{"list.gbnf", {"- item one\n- item two\n", "- x\n"}, {"* item\n", "- \n", "-x\n"}},
};

/* Every fixture grammar parses, accepts texts of its language and rejects near misses. */
static void
test_fixture_grammars(void **state)
{
	char		path[4096];
	char		rel[512];

	(void) state;
	snprintf(rel, sizeof(rel), "fixtures/gbnf/json.gbnf");
	if (lg_test_fixture(path, rel) == NULL)
		skip();
	for (size_t i = 0; i < sizeof(fixture_cases) / sizeof(fixture_cases[0]); i++)
	{
		const fixture_case *c = &fixture_cases[i];
		size_t		len;
		char	   *src;
		lg_error	err;
		lg_grammar *g;

		snprintf(rel, sizeof(rel), "fixtures/gbnf/%s", c->file);
		assert_non_null(lg_test_fixture(path, rel));
		src = lg_test_read_file(path, &len);
		assert_non_null(src);
		g = lg_grammar_parse(src, len, &err);
		if (g == NULL)
			fail_msg("%s: %s", c->file, err.msg);
		for (int k = 0; k < 4 && c->accept[k]; k++)
			if (k == 0 || c->accept[k][0])
				expect(g, c->accept[k], COMPLETE);
		for (int k = 0; k < 4 && c->reject[k]; k++)
			expect(g, c->reject[k], REJECTED);
		lg_grammar_free(g);
		free(src);
	}
}

/* Every *.gbnf in the fixture directory parses and can start (new fixtures are covered too). */
static void
test_all_fixture_files_parse(void **state)
{
	char		path[4096];
	char		dir[4096];
	DIR		   *d;
	struct dirent *de;
	int			n = 0;

	(void) state;
	if (lg_test_fixture(path, "fixtures/gbnf/json.gbnf") == NULL)
		skip();
	snprintf(dir, sizeof(dir), "%.*s", (int) (strrchr(path, '/') - path), path);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
	{
		size_t		len = strlen(de->d_name);
		char		file[8192];
		char	   *src;
		lg_error	err;
		lg_grammar *g;
		lg_grammar_matcher *m;

		if (len < 6 || strcmp(de->d_name + len - 5, ".gbnf") != 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", dir, de->d_name);
		src = lg_test_read_file(file, &len);
		assert_non_null(src);
		g = lg_grammar_parse(src, len, &err);
		if (g == NULL)
			fail_msg("%s: %s", de->d_name, err.msg);
		m = lg_grammar_matcher_new(g, NULL, &err);
		assert_non_null(m);
		assert_true(lg_grammar_matcher_can_continue(m));
		lg_grammar_matcher_free(m);
		lg_grammar_free(g);
		free(src);
		n++;
	}
	closedir(d);
	assert_true(n >= 8);
}

typedef struct error_case
{
	const char *src;
	const char *msg;			/* the whole message must contain this */
} error_case;

static const error_case error_cases[] = {
	{"root ::= \"abc", "line 1, column 10: unterminated string literal"},
	{"root ::= foo", "line 1, column 10: undefined rule foo"},
	{"root ::= \"a\"\n\nother ::= \"b\" missing-one\n", "line 3, column 15: undefined rule missing-one"},
	{"foo ::= \"a\"", "line 1, column 1: missing root rule"},
	{"root ::= []", "line 1, column 10: empty character class"},
	{"root ::= [z-a]", "line 1, column 11: invalid range in character class"},
	{"root ::= [abc", "line 1, column 10: unterminated character class"},
	{"root ::= \"a\"{3,2}", "line 1, column 13: bad repetition bounds {3,2}"},
	{"root ::= \"a\"{5000000}", "repetition bound larger than"},
	{"root ::= \"a\"{x}", "expecting a number or ','"},
	{"root ::= \"a\"{2", "expecting '}'"},
	{"root ::= * \"a\"", "line 1, column 10: expecting an item before the repetition operator '*'"},
	{"root ::= root \"a\" | \"a\"", "line 1, column 1: left recursion in rule root"},
	{"root ::= expr\nexpr ::= term | expr \"+\" term\nterm ::= [0-9]", "line 2, column 1: left recursion in rule expr"},
	{"root ::= x\nx ::= y? x \"a\" | \"b\"\ny ::= \"c\"", "left recursion in rule x"},
	{"root ::= \"\\q\"", "line 1, column 11: unknown escape \\q"},
	{"root ::= \"\\xZZ\"", "expecting 2 hex digits"},
	{"root ::= (\"a\"", "line 1, column 10: expecting ')'"},
	{"root ::= \"a\")", "unbalanced ')'"},
	{"root \"a\"", "line 1, column 6: expecting ::= after rule name root"},
	{"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule root is defined twice"},
	{"::= \"a\"", "line 1, column 1: expecting a rule name"},
	{"root ::= \"\\U00110000\"", "beyond U+10FFFF"},
	{"root ::= \"a\" ]", "unexpected ']'"},
	{"root ::= \"\xff\"", "invalid UTF-8"},
};

/* Every bad grammar gets LG_ERR_FORMAT and a message with its position. */
static void
test_parse_errors(void **state)
{
	(void) state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++)
	{
		lg_error	err;
		lg_grammar *g;

		lg_error_clear(&err);
		g = lg_grammar_parse(error_cases[i].src, strlen(error_cases[i].src), &err);
		if (g != NULL)
			fail_msg("accepted bad grammar: %s", error_cases[i].src);
		assert_int_equal(err.status, LG_ERR_FORMAT);
		if (strstr(err.msg, error_cases[i].msg) == NULL)
			fail_msg("grammar %s: message \"%s\" lacks \"%s\"", error_cases[i].src, err.msg, error_cases[i].msg);
	}
}

/* Nesting too deep is an error, not a stack overflow. */
static void
test_parse_limits(void **state)
{
	size_t		n = 300;
	char	   *src = malloc(32 + 2 * n);
	size_t		k = 0;
	lg_error	err;

	(void) state;
	k += (size_t) sprintf(src, "root ::= ");
	for (size_t i = 0; i < n; i++)
		src[k++] = '(';
	src[k++] = '"';
	src[k++] = 'a';
	src[k++] = '"';
	for (size_t i = 0; i < n; i++)
		src[k++] = ')';
	src[k] = '\0';
	assert_null(lg_grammar_parse(src, k, &err));
	assert_non_null(strstr(err.msg, "nested deeper than 256"));
	free(src);
}

/* Comments, several lines, continuation lines, escapes, `.`, names with - and digits. */
static void
test_syntax(void **state)
{
	lg_grammar *g;

	(void) state;
	g = parse_ok("# a comment\n"
				 "root ::= greet-1 # trailing\n"
				 "   | \"x\" ( \"y\"\n"
				 "         | \"z\" )\n"
				 "\n"
				 "greet-1 ::= \"hi\\t\\\"\\\\\\n\\[\\]\" . [\\x41-\\x43\\u00e9]\n");
	expect(g, "xy", COMPLETE);
	expect(g, "xz", COMPLETE);
	expect(g, "hi\t\"\\\n[]!A", COMPLETE);
	expect(g, "hi\t\"\\\n[]\xe2\x82\xac\xc3\xa9", COMPLETE);	/* . takes U+20AC, class takes é */
	expect(g, "hi\t\"\\\n[]!D", REJECTED);
	expect(g, "x", PREFIX);
	lg_grammar_free(g);

	/* CR LF and lone CR line ends, [^] (anything) */
	g = parse_ok("root ::= a\r\n  | b\ra ::= [^]\r\nb ::= \"b\" \"c\"\r\n");
	expect(g, "\xe2\x82\xac", COMPLETE);
	expect(g, "bc", COMPLETE);
	expect(g, "b", COMPLETE);	/* [^] takes it too */
	expect(g, "bcd", REJECTED);
	lg_grammar_free(g);

	/* an empty alternative and the empty literal */
	g = parse_ok("root ::= \"\" | \"a\" \"\"");
	expect(g, "", COMPLETE);
	expect(g, "a", COMPLETE);
	expect(g, "aa", REJECTED);
	lg_grammar_free(g);
}

/* Repetition operators and bounds, including counts far too large to unroll. */
static void
test_repetition(void **state)
{
	lg_grammar *g;
	size_t		nr,
				ne;
	char	   *big;

	(void) state;
	g = parse_ok("root ::= \"a\"{2,4}");
	expect(g, "a", PREFIX);
	expect(g, "aa", COMPLETE);
	expect(g, "aaaa", COMPLETE);
	expect(g, "aaaaa", REJECTED);
	lg_grammar_free(g);

	g = parse_ok("root ::= \"ab\"{3} \"c\"{2,} \"d\"{,2} \"e\"?");
	expect(g, "abababcc", COMPLETE);
	expect(g, "ababcc", REJECTED);
	expect(g, "abababccccccdde", COMPLETE);
	expect(g, "abababccddd", REJECTED);
	lg_grammar_free(g);

	g = parse_ok("root ::= [0-9]+ (\",\" [0-9]*)* \"!\"?");
	expect(g, "1,,22,3!", COMPLETE);
	expect(g, ",1", REJECTED);
	lg_grammar_free(g);

	/* a body that can match "" inside *, + and {m,n}: finite, and the minimum is moot */
	g = parse_ok("root ::= (\"a\"?)* \"b\" (\"c\"? \"d\"?){3,5} \"e\"");
	expect(g, "b", PREFIX);
	expect(g, "be", COMPLETE);
	expect(g, "aaabcdcdcde", COMPLETE);
	expect(g, "abcdcdcdcdcdcde", REJECTED);
	lg_grammar_free(g);

	/* repetitions of unbounded repetitions fold into one */
	g = parse_ok("root ::= \"a\"*+++++ \"-\" (\"b\"{2,})+ \"-\" (\"c\"?)+ \"-\" (\"d\"{2,}){3,}");
	lg_grammar_size(g, &nr, &ne);
	assert_true(nr <= 8);
	expect(g, "-bb--dddddd", COMPLETE);
	expect(g, "aaaa-bbbbb-cc-ddddddd", COMPLETE);
	expect(g, "-b-", REJECTED);
	expect(g, "-bb--ddddd", PREFIX);
	lg_grammar_free(g);

	/* {0,5000} and {5000} stay one element and match exactly their counts */
	g = parse_ok("root ::= [a-z]{0,5000} \"!\" \"x\"{5000}");
	lg_grammar_size(g, &nr, &ne);
	assert_true(ne < 32);
	big = malloc(5000 + 1 + 5000 + 2);
	memset(big, 'q', 5000);
	big[5000] = '!';
	memset(big + 5001, 'x', 5000);
	big[10001] = '\0';
	assert_int_equal(feed(g, big, 10001), COMPLETE);
	assert_int_equal(feed(g, big, 10000), PREFIX);
	big[10001] = 'x';
	assert_int_equal(feed(g, big, 10002), REJECTED);
	memset(big, 'q', 5002);
	assert_int_equal(feed(g, big, 5001), REJECTED);	/* 5001 letters */
	free(big);
	lg_grammar_free(g);
}

/* Classes over code points: ranges beyond ASCII, negation, escapes \u and \U. */
static void
test_unicode(void **state)
{
	lg_grammar *g;

	(void) state;
	g = parse_ok("root ::= [\\u03b1-\\u03c9]+ [^a-z\\u00e9] \"\\U0001F600\"");
	expect(g, "\xce\xb1\xce\xb2\xcf\x89" "A" "\xf0\x9f\x98\x80", COMPLETE);	/* αβω A 😀 */
	expect(g, "\xce\xb1\xc3\xa9", REJECTED);	/* α é */
	expect(g, "\xce\xb1" "b", REJECTED);
	expect(g, "\xce\xb1\xe4\xb8\x96\xf0\x9f\x98\x80", COMPLETE);	/* CJK passes the negated class */
	lg_grammar_free(g);

	/* literal UTF-8 in the grammar source */
	g = parse_ok("root ::= \"caf\xc3\xa9\" [\xe3\x81\x81-\xe3\x82\x9f]");
	expect(g, "caf\xc3\xa9\xe3\x81\x82", COMPLETE);
	expect(g, "cafe", REJECTED);
	lg_grammar_free(g);
}

/* A token may end inside a character: the partial bytes are kept and checked. */
static void
test_partial_utf8(void **state)
{
	lg_grammar *g;
	lg_grammar_matcher *m;

	(void) state;
	g = parse_ok("root ::= [a-z\\u4e00-\\u9fff]+");
	m = lg_grammar_matcher_new(g, NULL, NULL);
	assert_true(lg_grammar_matcher_accept_bytes(m, "a\xe4", 2));	/* 世 = E4 B8 96, cut */
	assert_false(lg_grammar_matcher_is_complete(m));
	assert_true(lg_grammar_matcher_can_continue(m));
	assert_false(lg_grammar_matcher_accept_bytes(m, "a", 1));	/* the character must go on */
	assert_true(lg_grammar_matcher_accept_bytes(m, "\xb8", 1));
	assert_true(lg_grammar_matcher_accept_bytes(m, "\x96", 1));
	assert_true(lg_grammar_matcher_is_complete(m));
	/* a lead byte no character of the class can start with is rejected at once */
	assert_false(lg_grammar_matcher_accept_bytes(m, "\xce", 1));	/* U+0380..U+03BF */
	assert_false(lg_grammar_matcher_accept_bytes(m, "\xf0", 1));	/* 4-byte: none in the class */
	assert_true(lg_grammar_matcher_accept_bytes(m, "\xe9", 1));		/* U+9000..U+9FFF: some are */
	assert_true(lg_grammar_matcher_accept_bytes(m, "\xbf\xbf", 2));	/* U+9FFF */
	assert_true(lg_grammar_matcher_is_complete(m));
	lg_grammar_matcher_free(m);

	/* the second byte already narrows the candidates: U+4E00..U+4E0F only */
	lg_grammar_free(g);
	g = parse_ok("root ::= [\u4e00-\u4e0f]");
	m = lg_grammar_matcher_new(g, NULL, NULL);
	assert_true(lg_grammar_matcher_accept_bytes(m, "\xe4", 1));
	assert_false(lg_grammar_matcher_accept_bytes(m, "\xb9", 1));	/* U+4E40.. */
	assert_true(lg_grammar_matcher_accept_bytes(m, "\xb8", 1));
	assert_false(lg_grammar_matcher_accept_bytes(m, "\x90", 1));	/* U+4E10 */
	assert_true(lg_grammar_matcher_accept_bytes(m, "\x8f", 1));	/* U+4E0F */
	assert_true(lg_grammar_matcher_is_complete(m));
	lg_grammar_matcher_free(m);

	/* invalid UTF-8 is rejected: stray continuation, overlong, surrogate, past U+10FFFF */
	g = (lg_grammar_free(g), parse_ok("root ::= .*"));
	expect(g, "\xe2\x82\xac\xf0\x9f\x98\x80", COMPLETE);
	expect(g, "\x80", REJECTED);
	expect(g, "\xc0\xaf", REJECTED);
	expect(g, "\xe0\x80\xaf", REJECTED);
	expect(g, "\xed\xa0\x80", REJECTED);
	expect(g, "\xf4\x90\x80\x80", REJECTED);
	expect(g, "\xe2\x82", PREFIX);
	lg_grammar_free(g);
}

/* Deep nesting beyond the stack limit is refused, never a crash; ambiguity is deduplicated. */
static void
test_runtime_limits(void **state)
{
	lg_grammar *g;
	char	   *s;
	size_t		n = LG_GRAMMAR_MAX_DEPTH + 10;

	(void) state;
	g = parse_ok("root ::= \"(\" root \")\" | \"x\"");
	s = malloc(n);
	memset(s, '(', n);
	assert_int_equal(feed(g, s, 100), PREFIX);
	assert_int_equal(feed(g, s, n), REJECTED);
	free(s);
	lg_grammar_free(g);

	/*
	 * 100 nested repetitions of nullable bodies that do not fold, ((("a"?
	 * "b"?)+ "b"?)+ "b"?)+...: each byte's expansion work is bounded.
	 */
	{
		char	   *src = malloc(2048);
		size_t		k = 0;
		lg_error	err;
		lg_grammar_matcher *m;
		bool		ok;

		k += (size_t) sprintf(src, "root ::= ");
		for (int i = 0; i < 100; i++)
			src[k++] = '(';
		k += (size_t) sprintf(src + k, "\"a\"? \"b\"?");
		for (int i = 0; i < 100; i++)
			k += (size_t) sprintf(src + k, ")+ \"b\"?");
		g = parse_ok(src);
		free(src);
		m = lg_grammar_matcher_new(g, NULL, &err);
		if (m == NULL)
			assert_int_equal(err.status, LG_ERR_RANGE);
		else
		{
			/* within the limits the answer is right; past them the text is refused */
			ok = lg_grammar_matcher_accept_bytes(m, "abababbbab", 10);
			if (ok)
				assert_true(lg_grammar_matcher_is_complete(m));
			assert_false(lg_grammar_matcher_accept_bytes(m, "x", 1));
			lg_grammar_matcher_free(m);
		}
		lg_grammar_free(g);
	}

	/* exponentially many derivations, few distinct stacks */
	g = parse_ok("root ::= (\"a\" | \"a\" | [a-c])* \"b\"");
	s = malloc(2001);
	memset(s, 'a', 2000);
	s[2000] = 'b';
	assert_int_equal(feed(g, s, 2001), COMPLETE);
	free(s);
	lg_grammar_free(g);
}

/* The 32k vocabulary, loaded once. */
static lg_vocab *vocab;
static lg_grammar_vocab *gvocab;

/* Load the llama SPM vocabulary; false (skip) when the fixture is absent. */
static bool
load_vocab(void)
{
	char		path[4096];
	lg_error	err;
	lg_gguf    *gg;

	if (gvocab != NULL)
		return true;
	if (lg_test_fixture(path, LLAMA_VOCAB) == NULL)
		return false;
	gg = lg_gguf_open(path, &err);
	assert_non_null(gg);
	vocab = lg_vocab_load(gg, &err);
	lg_gguf_close(gg);
	assert_non_null(vocab);
	gvocab = lg_grammar_vocab_new(vocab, &err);
	assert_non_null(gvocab);
	assert_int_equal(lg_grammar_vocab_n_tokens(gvocab), 32000);
	return true;
}

/* Next pseudo-random number. */
static uint32_t
rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) (*s >> 33);
}

/*
 * Walk `steps` random allowed tokens from the start of g; at every step the
 * fast mask, the slow walk and the brute-force truth must agree for every
 * token, and EOG must be allowed exactly when the grammar is complete.
 * Closing tokens are avoided most of the time so that walks go deep.
 */
static void
check_masks(const lg_grammar *g, uint64_t seed, int steps, const char *name)
{
	int32_t		nv = lg_grammar_vocab_n_tokens(gvocab);
	size_t		words = ((size_t) nv + 63) / 64;
	uint64_t   *fast = malloc(words * 8),
			   *slow = malloc(words * 8);
	int32_t    *allowed = malloc(sizeof(int32_t) * (size_t) nv);
	lg_grammar_matcher *m = lg_grammar_matcher_new(g, gvocab, NULL);
	lg_grammar_matcher *c = lg_grammar_matcher_new(g, gvocab, NULL);
	uint64_t	rs = seed;

	assert_non_null(m);
	assert_non_null(c);
	for (int step = 0; step < steps; step++)
	{
		int32_t		n_allowed = 0,
					pick = -1;

		lg_grammar_matcher_fill_mask(m, fast);
		assert_true(lg_grammar_matcher_fill_mask_slow(m, slow));
		for (int32_t t = 0; t < nv; t++)
		{
			bool		truth,
						f = (fast[t >> 6] >> (t & 63)) & 1,
						sl = (slow[t >> 6] >> (t & 63)) & 1;

			assert_true(lg_grammar_matcher_copy_state(c, m));
			truth = lg_grammar_matcher_accept_token(c, t);
			if (truth != f || truth != sl)
			{
				char		piece[128];
				int32_t		k = lg_token_to_piece(vocab, t, piece, sizeof(piece) - 1, false);

				piece[k > 0 && k < 128 ? k : 0] = '\0';
				fail_msg("%s seed %llu step %d: token %d \"%s\": accept %d, fast mask %d, slow mask %d",
						 name, (unsigned long long) seed, step, t, piece, truth, f, sl);
			}
			if (lg_vocab_is_eog(vocab, t))
				assert_int_equal(truth, lg_grammar_matcher_is_complete(m));
			else if (truth)
				allowed[n_allowed++] = t;
		}
		if (n_allowed == 0)
			break;
		for (int tries = 0; tries < 4; tries++)
		{
			char		piece[128];
			int32_t		k;

			pick = allowed[rnd(&rs) % (uint32_t) n_allowed];
			k = lg_token_to_piece(vocab, pick, piece, sizeof(piece), false);
			if (k <= 0 || k > 128 || !(memchr(piece, '}', (size_t) k) || memchr(piece, ']', (size_t) k) ||
										memchr(piece, ')', (size_t) k)) || rnd(&rs) % 4 == 0)
				break;
		}
		assert_true(lg_grammar_matcher_accept_token(m, pick));
	}
	lg_grammar_matcher_free(m);
	lg_grammar_matcher_free(c);
	free(fast);
	free(slow);
	free(allowed);
}

/* Fast mask == slow mask == brute force on random states of several grammars. */
static void
test_mask_equals_bruteforce(void **state)
{
	static const char *files[] = {"json.gbnf", "c.gbnf", "japanese.gbnf", "arithmetic.gbnf", "chess.gbnf", "list.gbnf"};
	char		path[4096];
	char		rel[512];

	(void) state;
	if (!load_vocab())
		skip();
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		size_t		len;
		char	   *src;
		lg_grammar *g;

		snprintf(rel, sizeof(rel), "fixtures/gbnf/%s", files[i]);
		assert_non_null(lg_test_fixture(path, rel));
		src = lg_test_read_file(path, &len);
		g = lg_grammar_parse(src, len, NULL);
		assert_non_null(g);
		for (uint64_t seed = 1; seed <= 3; seed++)
			check_masks(g, seed * 7919 + i, 12, files[i]);
		lg_grammar_free(g);
		free(src);
	}
}

/* The same for a schema-shaped grammar and grammars built to stress the segment cache. */
static void
test_mask_schema_like(void **state)
{
	static const char *inline_grammars[] = {
		/* bounded repetitions deep in a stack: counts must be part of the cache key */
		"root ::= \"[\" item (\",\" item){0,3} \"]\"\nitem ::= \"\\\"\" [a-z ]{2,5} \"\\\"\"",
		/* a long bounded string: counts far from the bound share a cache entry, near it they do not */
		"root ::= \"\\\"\" [a-z ]{0,60} \"\\\"\" [0-9]{0,40}",
		/* a nullable tail after a string: tokens leave the string into the rule below */
		"root ::= (\"\\\"\" [^\"]* \"\\\"\" ws)+ \"end\"\nws ::= [ \\n]*",
		/*
		 * a counted repetition then the same class, inside a group: a run of
		 * dashes leaves the group at many offsets, more distinct suffixes
		 * than the memo was sized for (it once filled up and probed forever)
		 */
		"root ::= \"\\\"\" ( [\\x2Da-z0-9]{0,10} [\\x2Da-z0-9] ) \"\\\"\"",
		/* a byte-level alphabet with partial characters */
		"root ::= ([\\u00e0-\\u00ff] | [\\u4e00-\\u4e0f] | \"ab\")* \".\"",
	};
	size_t		len;
	char	   *src;
	lg_grammar *g;

	(void) state;
	if (!load_vocab())
		skip();
	src = lg_test_read_file("tests/engine/grammar/person.gbnf", &len);
	assert_non_null(src);
	g = lg_grammar_parse(src, len, NULL);
	assert_non_null(g);
	for (uint64_t seed = 1; seed <= 3; seed++)
		check_masks(g, seed, 30, "person.gbnf");
	lg_grammar_free(g);
	free(src);
	for (size_t i = 0; i < sizeof(inline_grammars) / sizeof(inline_grammars[0]); i++)
	{
		g = parse_ok(inline_grammars[i]);
		for (uint64_t seed = 1; seed <= 3; seed++)
			check_masks(g, seed + 100 * i, 25, inline_grammars[i]);
		lg_grammar_free(g);
	}
}

/* A real text's tokens are all in the masks along the way, and EOG at the end. */
static void
test_mask_follows_text(void **state)
{
	size_t		len;
	char	   *src = NULL,
			   *text = NULL;
	lg_grammar *g;
	lg_grammar_matcher *m;
	lg_token	ids[1024];
	int64_t		n;
	uint64_t   *mask;
	lg_token	eos;

	(void) state;
	if (!load_vocab())
		skip();
	src = lg_test_read_file("tests/engine/grammar/person.gbnf", &len);
	g = lg_grammar_parse(src, len, NULL);
	text = lg_test_read_file("tests/engine/grammar/person.json", &len);
	while (len > 0 && text[len - 1] == '\n')
		len--;
	n = lg_tokenize(vocab, text, len, false, false, ids, 1024, NULL);
	assert_true(n > 10 && n < 1024);
	m = lg_grammar_matcher_new(g, gvocab, NULL);
	mask = malloc((32000 / 64) * 8);
	/* SPM puts a space before the first token; the grammar allows none there, so skip that piece */
	{
		char		piece[64];
		int32_t		k = lg_token_to_piece(vocab, ids[0], piece, sizeof(piece), false);

		assert_true(k >= 2 && piece[0] == ' ' && piece[1] == '{');
		assert_true(lg_grammar_matcher_accept_bytes(m, piece + 1, (size_t) k - 1));
	}
	for (int64_t i = 1; i < n; i++)
	{
		lg_grammar_matcher_fill_mask(m, mask);
		if (!((mask[ids[i] >> 6] >> (ids[i] & 63)) & 1))
			fail_msg("token %lld (id %d) of the text is not in the mask", (long long) i, ids[i]);
		assert_true(lg_grammar_matcher_accept_token(m, ids[i]));
	}
	lg_grammar_matcher_fill_mask(m, mask);
	eos = lg_vocab_eos(vocab);
	assert_true(lg_grammar_matcher_is_complete(m));
	assert_true((mask[eos >> 6] >> (eos & 63)) & 1);
	assert_true(lg_grammar_matcher_accept_token(m, eos));
	/* a control token that is not EOG is never allowed */
	assert_false((mask[lg_vocab_bos(vocab) >> 6] >> (lg_vocab_bos(vocab) & 63)) & 1);
	lg_grammar_matcher_free(m);
	lg_grammar_free(g);
	free(mask);
	free(src);
	free(text);
}

typedef struct thread_arg
{
	const lg_grammar *g;
	uint64_t	seed;
	int			bad;
} thread_arg;

/* Random walk comparing the shared-cache mask with the slow walk. */
static void *
walker(void *p)
{
	thread_arg *a = p;
	uint64_t	fast[500],
				slow[500];
	lg_grammar_matcher *m = lg_grammar_matcher_new(a->g, gvocab, NULL);
	uint64_t	rs = a->seed;

	for (int step = 0; step < 40 && m != NULL; step++)
	{
		int32_t		n = 0,
					k;

		lg_grammar_matcher_fill_mask(m, fast);
		/* no cmocka asserts on this thread: count failures for the main thread */
		if (!lg_grammar_matcher_fill_mask_slow(m, slow) || memcmp(fast, slow, sizeof(fast)) != 0)
			a->bad++;
		for (int w = 0; w < 500; w++)
			n += __builtin_popcountll(fast[w] & ~(1ULL << 2));	/* not EOS (id 2) */
		if (n == 0)
			break;
		k = (int32_t) (rnd(&rs) % (uint32_t) n);
		for (int32_t t = 0; t < 32000; t++)
			if (t != 2 && ((fast[t >> 6] >> (t & 63)) & 1) && k-- == 0)
			{
				if (!lg_grammar_matcher_accept_token(m, t))
					a->bad++;
				break;
			}
	}
	lg_grammar_matcher_free(m);
	return NULL;
}

/* Matchers on several threads share one grammar's cache and still agree with the slow walk. */
static void
test_shared_cache_threads(void **state)
{
	char		path[4096];
	size_t		len;
	char	   *src;
	lg_grammar *g;
	pthread_t	th[4];
	thread_arg	args[4];
	lg_grammar_matcher *m;
	lg_grammar_cache_stats st;

	(void) state;
	if (!load_vocab() || lg_test_fixture(path, "fixtures/gbnf/json.gbnf") == NULL)
		skip();
	src = lg_test_read_file(path, &len);
	g = lg_grammar_parse(src, len, NULL);
	for (int i = 0; i < 4; i++)
	{
		args[i].g = g;
		args[i].seed = (uint64_t) i + 1;
		args[i].bad = 0;
		assert_int_equal(pthread_create(&th[i], NULL, walker, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++)
	{
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].bad, 0);
	}
	m = lg_grammar_matcher_new(g, gvocab, NULL);
	{
		uint64_t	mask[500];

		lg_grammar_matcher_fill_mask(m, mask);
	}
	lg_grammar_matcher_cache_stats(m, &st);
	assert_true(st.entries > 0);
	assert_true(st.hits > 0);
	assert_true(st.bytes > 0 && st.bytes < 64u << 20);
	lg_grammar_matcher_free(m);
	lg_grammar_free(g);
	free(src);
}

/* Parsing the same text again shares the grammar and its warm caches; idle ones are bounded. */
static void
test_registry(void **state)
{
	const char *text = "root ::= \"{\" [a-z]* \"}\"";
	lg_grammar *a,
			   *b;
	lg_grammar_matcher *m;
	lg_grammar_cache_stats st;
	uint64_t	mask[500];

	(void) state;
	if (!load_vocab())
		skip();
	lg_grammar_drop_idle();
	a = parse_ok(text);
	b = parse_ok(text);
	assert_ptr_equal(a, b);
	m = lg_grammar_matcher_new(a, gvocab, NULL);
	lg_grammar_matcher_fill_mask(m, mask);
	lg_grammar_matcher_free(m);
	lg_grammar_free(a);
	lg_grammar_free(b);
	/* unreferenced but kept: the next parse finds the cache built above */
	a = parse_ok(text);
	m = lg_grammar_matcher_new(a, gvocab, NULL);
	lg_grammar_matcher_cache_stats(m, &st);
	assert_true(st.entries > 0);
	lg_grammar_matcher_free(m);
	lg_grammar_free(a);
	/* more idle grammars than kept: the oldest goes */
	for (int i = 0; i < LG_GRAMMAR_KEEP_IDLE + 2; i++)
	{
		char		other[64];

		snprintf(other, sizeof(other), "root ::= \"%d\"", i);
		lg_grammar_free(parse_ok(other));
	}
	a = parse_ok(text);
	m = lg_grammar_matcher_new(a, gvocab, NULL);
	lg_grammar_matcher_cache_stats(m, &st);
	assert_int_equal(st.entries, 0);
	lg_grammar_matcher_free(m);
	lg_grammar_free(a);
	lg_grammar_drop_idle();
}

/* accept_token: out-of-range ids and tokens with no bytes are refused, state unchanged. */
static void
test_accept_token_edges(void **state)
{
	lg_grammar *g;
	lg_grammar_matcher *m;
	lg_token	a;

	(void) state;
	if (!load_vocab())
		skip();
	g = parse_ok("root ::= \"a\"+");
	m = lg_grammar_matcher_new(g, gvocab, NULL);
	assert_false(lg_grammar_matcher_accept_token(m, -1));
	assert_false(lg_grammar_matcher_accept_token(m, 32000));
	assert_false(lg_grammar_matcher_accept_token(m, lg_vocab_bos(vocab)));
	assert_false(lg_grammar_matcher_accept_token(m, lg_vocab_eos(vocab)));	/* not complete yet */
	a = lg_vocab_find_token(vocab, "a", 1);
	assert_true(a != LG_TOKEN_NULL);
	assert_true(lg_grammar_matcher_accept_token(m, a));
	assert_true(lg_grammar_matcher_is_complete(m));
	assert_true(lg_grammar_matcher_accept_token(m, lg_vocab_eos(vocab)));
	lg_grammar_matcher_free(m);
	lg_grammar_free(g);
}

/*
 * The same stacks with different partial characters pending are different
 * states: the matcher's memory of recent masks must tell them apart.
 */
static void
test_mask_partial_states(void **state)
{
	lg_grammar *g;
	lg_grammar_matcher *m;
	uint64_t	fast[500],
				slow[500];
	lg_token	b8 = LG_TOKEN_NULL,
				b80 = LG_TOKEN_NULL;

	(void) state;
	if (!load_vocab())
		skip();
	g = parse_ok("root ::= [\\u4e00-\\u4e0f\\u9000-\\u900f]");
	m = lg_grammar_matcher_new(g, gvocab, NULL);
	/* the byte tokens <0xB8> and <0x80> */
	for (lg_token t = 0; t < 32000; t++)
	{
		char		piece[8];
		int32_t		k = lg_token_to_piece(vocab, t, piece, sizeof(piece), false);

		if (k == 1 && (uint8_t) piece[0] == 0xB8)
			b8 = t;
		if (k == 1 && (uint8_t) piece[0] == 0x80)
			b80 = t;
	}
	assert_true(b8 != LG_TOKEN_NULL && b80 != LG_TOKEN_NULL);
	for (int round = 0; round < 2; round++)
	{
		lg_grammar_matcher_reset(m);
		assert_true(lg_grammar_matcher_accept_bytes(m, round == 0 ? "\xe4" : "\xe9", 1));
		lg_grammar_matcher_fill_mask(m, fast);
		assert_true(lg_grammar_matcher_fill_mask_slow(m, slow));
		assert_memory_equal(fast, slow, sizeof(fast));
		/* after E4 the next byte is B8 (U+4E..); after E9 it is 80 (U+90..) */
		assert_int_equal((fast[b8 >> 6] >> (b8 & 63)) & 1, round == 0);
		assert_int_equal((fast[b80 >> 6] >> (b80 & 63)) & 1, round == 1);
	}
	lg_grammar_matcher_free(m);
	lg_grammar_free(g);
}

/* Free the shared vocabulary after the last test. */
static int
teardown_all(void **state)
{
	(void) state;
	lg_grammar_drop_idle();
	lg_grammar_vocab_free(gvocab);
	lg_vocab_free(vocab);
	gvocab = NULL;
	vocab = NULL;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_grammars),
		cmocka_unit_test(test_all_fixture_files_parse),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_repetition),
		cmocka_unit_test(test_unicode),
		cmocka_unit_test(test_partial_utf8),
		cmocka_unit_test(test_runtime_limits),
		cmocka_unit_test(test_accept_token_edges),
		cmocka_unit_test(test_mask_follows_text),
		cmocka_unit_test(test_mask_equals_bruteforce),
		cmocka_unit_test(test_mask_schema_like),
		cmocka_unit_test(test_shared_cache_threads),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_mask_partial_states),
	};

	return cmocka_run_group_tests(tests, NULL, teardown_all);
}
