/*
 * test_vocab.c — the tokenizers against llama.cpp's tokenizer fixtures, round
 * trips, special tokens and broken metadata.
 *
 * The fixtures (ggml-vocab-*.gguf with .inp/.out made by llama.cpp's
 * convert_hf_to_gguf_update.py from the Hugging Face tokenizers) are read
 * from $LLAMAGPU_SHARED/fixtures/tokenizer; tests that need them skip
 * visibly when that directory is absent.
 */
#include "test_util.h"

#include <unistd.h>

#include "gguf.h"
#include "vocab.h"

#define TESTSEP "\n__ggml_vocab_test__\n"

/* ---- helpers ---- */

/* Read a whole file into a NUL-terminated buffer. */
static char *
read_all(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t) n;
	return buf;
}

/* Open a fixture vocabulary; NULL (after a SKIP line) when absent. */
static lg_vocab *
load_fixture(const char *name)
{
	char		rel[256];
	char		path[4096];
	lg_error	err;
	lg_gguf    *g;
	lg_vocab   *v;

	snprintf(rel, sizeof(rel), "fixtures/tokenizer/ggml-vocab-%s.gguf", name);
	if (lg_test_fixture(path, rel) == NULL)
		return NULL;
	lg_error_clear(&err);
	g = lg_gguf_open(path, &err);
	if (g == NULL)
		fail_msg("cannot open %s: %s", path, err.msg);
	v = lg_vocab_load(g, &err);
	if (v == NULL)
		fail_msg("cannot load vocabulary %s: %s", path, err.msg);
	lg_gguf_close(g);
	return v;
}

/* Tokenize into a malloc'd array; checks the two-call size protocol too. */
static lg_token *
tokenize(const lg_vocab *v, const char *s, size_t len, bool add_special, bool parse_special,
		 int64_t *n)
{
	lg_error	err;
	lg_token	probe[1];
	int64_t		need;
	lg_token   *toks;

	lg_error_clear(&err);
	need = lg_tokenize(v, s, len, add_special, parse_special, probe, 0, &err);
	if (need < 0)
		fail_msg("lg_tokenize failed: %s", err.msg);
	toks = malloc(((size_t) need + 1) * sizeof(lg_token));
	assert_non_null(toks);
	assert_int_equal(lg_tokenize(v, s, len, add_special, parse_special, toks, need + 1, &err), need);
	*n = need;
	return toks;
}

/* Detokenize into a malloc'd NUL-terminated string. */
static char *
detokenize(const lg_vocab *v, const lg_token *t, int64_t n, bool remove_special, bool unparse,
		   int64_t *len)
{
	int64_t		need = lg_detokenize(v, t, n, NULL, 0, remove_special, unparse);
	char	   *s;

	assert_true(need >= 0);
	s = malloc((size_t) need + 1);
	assert_non_null(s);
	assert_int_equal(lg_detokenize(v, t, n, s, need, remove_special, unparse), need);
	s[need] = '\0';
	*len = need;
	return s;
}

/* Do the tokens of s (no specials) equal expect[0..n)? */
static bool
tokens_equal(const lg_vocab *v, const char *s, size_t len, const lg_token *expect, int64_t n)
{
	int64_t		got_n;
	lg_token   *got = tokenize(v, s, len, false, false, &got_n);
	bool		eq = got_n == n && memcmp(got, expect, (size_t) n * sizeof(lg_token)) == 0;

	free(got);
	return eq;
}

/* Print expected and actual tokens for a failing fixture string. */
static void
report_mismatch(const lg_vocab *v, const char *s, size_t len, const lg_token *expect, int64_t n)
{
	int64_t		got_n;
	lg_token   *got = tokenize(v, s, len, false, false, &got_n);

	printf("  MISMATCH on '%.*s'\n    expected:", (int) (len > 200 ? 200 : len), s);
	for (int64_t i = 0; i < n; i++)
		printf(" %d", expect[i]);
	printf("\n    got:     ");
	for (int64_t i = 0; i < got_n; i++)
		printf(" %d", got[i]);
	printf("\n");
	free(got);
}

/* Parse one line of space-separated ids. */
static int64_t
parse_ids(const char *line, size_t len, lg_token *out, int64_t cap)
{
	int64_t		n = 0;
	size_t		i = 0;

	while (i < len)
	{
		while (i < len && line[i] == ' ')
			i++;
		if (i >= len)
			break;
		assert_true(n < cap);
		out[n++] = (lg_token) strtol(line + i, NULL, 10);
		while (i < len && line[i] != ' ')
			i++;
	}
	return n;
}

/* One fixture case: the input string and its expected ids. */
typedef struct fixture_case
{
	const char *s;
	size_t		len;
	lg_token	ids[1024];
	int64_t		n;
} fixture_case;

/* Read name.inp / name.out into cases; returns the count (0 when absent). */
static int
read_cases(const char *name, fixture_case **cases, char **inp_buf, char **out_buf)
{
	char		rel[256];
	char		path[4096];
	size_t		inp_len,
				out_len;
	int			n_in = 0,
				n_out = 0;
	char	   *p;
	char	   *end;
	fixture_case *c;

	snprintf(rel, sizeof(rel), "fixtures/tokenizer/ggml-vocab-%s.gguf.inp", name);
	if (lg_test_fixture(path, rel) == NULL)
		return 0;
	*inp_buf = read_all(path, &inp_len);
	snprintf(rel, sizeof(rel), "fixtures/tokenizer/ggml-vocab-%s.gguf.out", name);
	if (lg_test_fixture(path, rel) == NULL)
		return 0;
	*out_buf = read_all(path, &out_len);
	assert_non_null(*inp_buf);
	assert_non_null(*out_buf);

	c = calloc(256, sizeof(fixture_case));
	assert_non_null(c);

	/* inputs: separated by TESTSEP, as test-tokenizer-0 reads them */
	p = *inp_buf;
	end = *inp_buf + inp_len;
	while (p < end)
	{
		char	   *sep = memmem(p, (size_t) (end - p), TESTSEP, strlen(TESTSEP));

		assert_true(n_in < 256);
		c[n_in].s = p;
		c[n_in].len = sep ? (size_t) (sep - p) : (size_t) (end - p);
		n_in++;
		if (sep == NULL)
			break;
		p = sep + strlen(TESTSEP);
	}

	/* outputs: one line each */
	p = *out_buf;
	end = *out_buf + out_len;
	while (p < end)
	{
		char	   *nl = memchr(p, '\n', (size_t) (end - p));
		size_t		ll = nl ? (size_t) (nl - p) : (size_t) (end - p);

		assert_true(n_out < n_in);
		c[n_out].n = parse_ids(p, ll, c[n_out].ids, 1024);
		n_out++;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	assert_int_equal(n_in, n_out);
	*cases = c;
	return n_in;
}

/* Tokenize every fixture string and compare with the reference ids. */
static void
check_fixture(const char *name)
{
	lg_vocab   *v = load_fixture(name);
	fixture_case *cases = NULL;
	char	   *inp = NULL,
			   *out = NULL;
	int			n,
				pass = 0;

	if (v == NULL)
	{
		skip();
		return;
	}
	n = read_cases(name, &cases, &inp, &out);
	if (n == 0)
	{
		lg_vocab_free(v);
		skip();
		return;
	}
	for (int i = 0; i < n; i++)
	{
		if (tokens_equal(v, cases[i].s, cases[i].len, cases[i].ids, cases[i].n))
			pass++;
		else
			report_mismatch(v, cases[i].s, cases[i].len, cases[i].ids, cases[i].n);
	}
	printf("  vocab %-14s (%s): %d/%d fixture strings match\n", name, lg_vocab_type_name(v),
		   pass, n);
	free(cases);
	free(inp);
	free(out);
	lg_vocab_free(v);
	assert_int_equal(pass, n);
}

/* One test per fixture vocabulary, so a failure names it. */
static void
test_fixture_llama_spm(void **state)
{
	(void) state;
	check_fixture("llama-spm");
}

static void
test_fixture_phi_3(void **state)
{
	(void) state;
	check_fixture("phi-3");
}

static void
test_fixture_gpt_2(void **state)
{
	(void) state;
	check_fixture("gpt-2");
}

static void
test_fixture_bert_bge(void **state)
{
	(void) state;
	check_fixture("bert-bge");
}

static void
test_fixture_deepseek_llm(void **state)
{
	(void) state;
	check_fixture("deepseek-llm");
}

static void
test_fixture_mpt(void **state)
{
	(void) state;
	check_fixture("mpt");
}

/* Would llama.cpp's clean_up_tokenization_spaces change s? */
static bool
cleanup_changes(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (s[i] == ' ' && strchr("?!.,'", s[i + 1]) != NULL)
			return true;
	return false;
}

/* detokenize(tokenize(s)) == s for one string; returns whether it held. */
static bool
round_trips(const lg_vocab *v, const char *s, size_t len)
{
	int64_t		n,
				dlen;
	lg_token   *t = tokenize(v, s, len, false, false, &n);
	char	   *d = detokenize(v, t, n, false, false, &dlen);
	bool		ok = (size_t) dlen == len && memcmp(d, s, len) == 0;

	if (!ok)
		printf("  round trip of '%.*s' gave '%s'\n", (int) (len > 100 ? 100 : len), s, d);
	free(t);
	free(d);
	return ok;
}

/* Strings of our own that must survive a round trip. */
static const char *const extra_strings[] = {
	"Hello world",
	" leading space",
	"  two leading spaces and trailing   ",
	"emoji \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80 and ZWJ \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
	"CJK \xE6\x88\x91\xE6\x83\xB3\xE5\x9C\xA8 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xE3\x81\x8B\xE3\x81\xAA",
	"combining e\xCC\x81 a\xCC\x8A o\xCC\x88\xCC\x81",
	"control \x01\x02\x7F chars\ttab\rcr",
	"whitespace runs \n\n\n\t\t    \xC2\xA0\xE2\x80\x83 end",
	"numbers 0 12 345 6789 3.14159 1,000,000 -42 \xD9\xA3\xD9\xA4",
	"mixed\xE2\x80\xA8separators\xE2\x80\xA9here",
	"                                                                x",
	"",
};

/* Round trips on the fixture strings and our own, where llama.cpp promises them. */
static void
check_round_trips(const char *name, bool with_cleanup)
{
	lg_vocab   *v = load_fixture(name);
	fixture_case *cases = NULL;
	char	   *inp = NULL,
			   *out = NULL;
	int			n,
				ok = 0,
				tried = 0;

	if (v == NULL)
	{
		skip();
		return;
	}
	n = read_cases(name, &cases, &inp, &out);
	for (int i = 0; i < n; i++)
	{
		if (with_cleanup && cleanup_changes(cases[i].s, cases[i].len))
			continue;
		tried++;
		ok += round_trips(v, cases[i].s, cases[i].len);
	}
	for (size_t i = 0; i < sizeof(extra_strings) / sizeof(extra_strings[0]); i++)
	{
		tried++;
		ok += round_trips(v, extra_strings[i], strlen(extra_strings[i]));
	}
	printf("  vocab %-14s: %d/%d round trips\n", name, ok, tried);
	free(cases);
	free(inp);
	free(out);
	lg_vocab_free(v);
	assert_int_equal(ok, tried);
}

/* Round trips per vocabulary; gpt-2 and mpt clean up spaces, so some strings are skipped. */
static void
test_round_trip_llama_spm(void **state)
{
	(void) state;
	check_round_trips("llama-spm", false);
}

static void
test_round_trip_phi_3(void **state)
{
	(void) state;
	check_round_trips("phi-3", false);
}

static void
test_round_trip_deepseek_llm(void **state)
{
	(void) state;
	check_round_trips("deepseek-llm", false);
}

static void
test_round_trip_gpt_2(void **state)
{
	(void) state;
	check_round_trips("gpt-2", true);
}

static void
test_round_trip_mpt(void **state)
{
	(void) state;
	check_round_trips("mpt", true);
}

/* SPM keeps invalid UTF-8 through byte tokens. */
static void
test_spm_invalid_utf8_round_trip(void **state)
{
	lg_vocab   *v = load_fixture("llama-spm");
	static const char s[] = "ab\xC3(\xFF\xFE\x80z\xE2\x82";

	(void) state;
	if (v == NULL)
	{
		skip();
		return;
	}
	assert_true(round_trips(v, s, sizeof(s) - 1));
	lg_vocab_free(v);
}

/* Does the token list contain t? */
static bool
has_token(const lg_token *t, int64_t n, lg_token x)
{
	for (int64_t i = 0; i < n; i++)
		if (t[i] == x)
			return true;
	return false;
}

/* Special-token text maps to its id only with parse_special. */
static void
test_special_tokens_spm(void **state)
{
	lg_vocab   *v = load_fixture("llama-spm");
	static const char s[] = "<s>Hello</s>world";
	lg_token   *t;
	int64_t		n;

	(void) state;
	if (v == NULL)
	{
		skip();
		return;
	}
	assert_int_equal(lg_vocab_bos(v), 1);
	assert_int_equal(lg_vocab_eos(v), 2);
	assert_true(lg_vocab_add_bos(v));
	assert_false(lg_vocab_add_eos(v));
	assert_true(lg_vocab_is_eog(v, 2));
	assert_false(lg_vocab_is_eog(v, 1));
	assert_true(lg_vocab_is_control(v, 1));

	t = tokenize(v, s, strlen(s), false, true, &n);
	/* [<s>, "▁Hello", </s>, "▁world"]: text after a special token gets the space */
	assert_int_equal(n, 4);
	assert_int_equal(t[0], 1);
	assert_int_equal(t[1], 15043);
	assert_int_equal(t[2], 2);
	assert_int_equal(t[3], 3186);
	free(t);

	t = tokenize(v, s, strlen(s), false, false, &n);
	assert_false(has_token(t, n, 1));
	assert_false(has_token(t, n, 2));
	free(t);

	/* BOS only with add_special */
	t = tokenize(v, "Hello", 5, true, false, &n);
	assert_int_equal(n, 2);
	assert_int_equal(t[0], 1);
	free(t);
	t = tokenize(v, "Hello", 5, false, false, &n);
	assert_int_equal(n, 1);
	assert_int_not_equal(t[0], 1);
	free(t);
	t = tokenize(v, "", 0, true, false, &n);
	assert_int_equal(n, 1);
	assert_int_equal(t[0], 1);
	free(t);
	lg_vocab_free(v);
}

/* Phi-3: chat tokens, end-of-generation set and the right-strip rule. */
static void
test_special_tokens_phi3(void **state)
{
	lg_vocab   *v = load_fixture("phi-3");
	static const char s[] = "<|user|>\nHi<|end|>\n<|assistant|>";
	lg_token   *t;
	int64_t		n;
	int64_t		dlen;
	char	   *d;

	(void) state;
	if (v == NULL)
	{
		skip();
		return;
	}
	assert_true(lg_vocab_is_eog(v, 32007));	/* <|end|> */
	assert_true(lg_vocab_is_eog(v, 32000));	/* <|endoftext|> and EOS */
	assert_false(lg_vocab_is_eog(v, 32010));	/* <|user|> */
	assert_true(lg_vocab_eot(v) != LG_TOKEN_NULL);
	assert_true(lg_vocab_is_eog(v, lg_vocab_eot(v)));

	t = tokenize(v, s, strlen(s), false, true, &n);
	/* the newline after each special token is stripped (phi-3 rstrip) */
	assert_int_equal(n, 4);
	assert_int_equal(t[0], 32010);
	assert_int_equal(t[2], 32007);
	assert_int_equal(t[3], 32001);
	d = detokenize(v, t, n, false, true, &dlen);
	assert_string_equal(d, "<|user|> Hi<|end|><|assistant|>");
	free(d);
	d = detokenize(v, t, n, false, false, &dlen);
	assert_string_equal(d, " Hi");
	free(d);
	free(t);

	t = tokenize(v, s, strlen(s), false, false, &n);
	assert_false(has_token(t, n, 32010));
	assert_false(has_token(t, n, 32007));
	free(t);
	lg_vocab_free(v);
}

/* GPT-2 and MPT: <|endoftext|>, and user-defined tokens split out always. */
static void
test_special_tokens_bpe(void **state)
{
	lg_vocab   *v = load_fixture("gpt-2");
	lg_vocab   *m;
	static const char s[] = "a<|endoftext|>b";
	lg_token   *t;
	int64_t		n;

	(void) state;
	if (v == NULL)
	{
		skip();
		return;
	}
	assert_false(lg_vocab_add_bos(v));
	t = tokenize(v, s, strlen(s), true, true, &n);
	assert_int_equal(n, 3);
	assert_int_equal(t[1], 50256);
	free(t);
	t = tokenize(v, s, strlen(s), false, false, &n);
	assert_true(n > 3);
	assert_false(has_token(t, n, 50256));
	free(t);
	assert_true(lg_vocab_is_eog(v, 50256));
	lg_vocab_free(v);

	m = load_fixture("mpt");
	if (m == NULL)
		return;
	/* "   " (three spaces) is the user-defined token 50275 */
	t = tokenize(m, "a   b", 5, false, false, &n);
	assert_true(has_token(t, n, 50275));
	free(t);
	lg_vocab_free(m);
}

/* DeepSeek adds BOS per its metadata; BERT wraps in [CLS] ... [SEP]. */
static void
test_bos_from_metadata(void **state)
{
	lg_vocab   *v = load_fixture("deepseek-llm");
	lg_token   *t;
	int64_t		n;

	(void) state;
	if (v == NULL)
	{
		skip();
		return;
	}
	assert_true(lg_vocab_add_bos(v));
	t = tokenize(v, "Hello", 5, true, false, &n);
	assert_int_equal(t[0], 100000);
	assert_int_not_equal(t[n - 1], 100001);
	free(t);
	t = tokenize(v, "Hello", 5, false, false, &n);
	assert_int_not_equal(t[0], 100000);
	free(t);
	lg_vocab_free(v);

	v = load_fixture("bert-bge");
	if (v == NULL)
		return;
	t = tokenize(v, "Hello world", 11, true, false, &n);
	assert_int_equal(n, 4);
	assert_int_equal(t[0], 101);
	assert_int_equal(t[3], 102);
	free(t);
	t = tokenize(v, "[CLS] x [SEP]", 13, false, true, &n);
	assert_int_equal(t[0], 101);
	assert_int_equal(t[n - 1], 102);
	free(t);
	lg_vocab_free(v);
}

/* Pieces: U+2581 becomes a space, byte tokens their byte, control text on request. */
static void
test_token_to_piece(void **state)
{
	lg_vocab   *v = load_fixture("llama-spm");
	char		buf[64];
	lg_token	hello;

	(void) state;
	if (v == NULL)
	{
		skip();
		return;
	}
	hello = lg_vocab_find_token(v, "\xE2\x96\x81Hello", 8);
	assert_int_equal(hello, 15043);
	assert_int_equal(lg_token_to_piece(v, hello, buf, sizeof(buf), false), 6);
	assert_memory_equal(buf, " Hello", 6);
	assert_int_equal(lg_token_to_piece(v, 3 + 0x41, buf, sizeof(buf), false), 1);	/* <0x41> */
	assert_int_equal(buf[0], 'A');
	assert_int_equal(lg_token_to_piece(v, 1, buf, sizeof(buf), false), 0);
	assert_int_equal(lg_token_to_piece(v, 1, buf, sizeof(buf), true), 3);
	assert_memory_equal(buf, "<s>", 3);
	/* too small a buffer: the size needed comes back */
	assert_int_equal(lg_token_to_piece(v, hello, buf, 2, false), 6);
	assert_true(lg_token_to_piece(v, -1, buf, sizeof(buf), false) < 0);
	assert_true(lg_token_to_piece(v, 32000, buf, sizeof(buf), false) < 0);
	lg_vocab_free(v);
}

/* Detokenize: leading-space removal and what remove_special does. */
static void
test_detokenize_spm(void **state)
{
	lg_vocab   *v = load_fixture("llama-spm");
	lg_token	t[3] = {1, 15043, 2};
	char	   *d;
	int64_t		len;
	char		small[3];

	(void) state;
	if (v == NULL)
	{
		skip();
		return;
	}
	d = detokenize(v, t + 1, 1, false, false, &len);
	assert_string_equal(d, "Hello");
	free(d);
	/* after a BOS that is removed, llama.cpp keeps the space */
	d = detokenize(v, t, 3, true, false, &len);
	assert_string_equal(d, " Hello");
	free(d);
	d = detokenize(v, t, 3, true, true, &len);
	assert_string_equal(d, " Hello</s>");
	free(d);
	d = detokenize(v, t, 3, false, true, &len);
	assert_string_equal(d, "<s> Hello</s>");
	free(d);
	d = detokenize(v, t, 3, false, false, &len);
	assert_string_equal(d, " Hello");
	free(d);
	assert_int_equal(lg_detokenize(v, t + 1, 1, small, sizeof(small), false, false), 5);
	assert_memory_equal(small, "Hel", 3);
	t[0] = 99999;
	assert_true(lg_detokenize(v, t, 3, NULL, 0, false, false) < 0);
	lg_vocab_free(v);
}

/* Arbitrary bytes never break tokenization; the size protocol holds. */
static void
test_random_bytes(void **state)
{
	static const char *const names[] = {"llama-spm", "phi-3", "gpt-2", "bert-bge",
	"deepseek-llm", "mpt"};
	uint64_t	seed = 12345;

	(void) state;
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
	{
		lg_vocab   *v = load_fixture(names[k]);

		if (v == NULL)
		{
			skip();
			return;
		}
		for (int iter = 0; iter < 200; iter++)
		{
			char		s[257];
			size_t		len = (size_t) (iter % 64) * 4 + 1;
			int64_t		n,
						dlen;
			lg_token   *t;
			lg_token	few[2];
			lg_error	err;
			char	   *d;

			for (size_t i = 0; i < len; i++)
			{
				seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
				s[i] = (char) (seed >> 56);
				if (iter % 3 == 0)
					s[i] = " a\n\xC3\xA9<|>s/\xE2\x96\x81\x00"[(seed >> 40) % 15];
			}
			t = tokenize(v, s, len, iter & 1, iter & 2, &n);
			lg_error_clear(&err);
			assert_int_equal(lg_tokenize(v, s, len, iter & 1, iter & 2, few, 2, &err), n);
			if (n > 0)
				assert_int_equal(few[0], t[0]);
			d = detokenize(v, t, n, iter & 4, iter & 8, &dlen);
			free(d);
			free(t);
		}
		lg_vocab_free(v);
	}
}

/* ---- broken metadata, built in memory ---- */

typedef struct mini
{
	const char *model;			/* NULL: leave out */
	const char *pre;
	const char *const *tokens;
	uint64_t	n_tokens;
	uint64_t	n_scores;		/* 0: no scores */
	const int32_t *types;
	uint64_t	n_types;
	const char *const *merges;
	uint64_t	n_merges;
	int64_t		bos;			/* -1: leave out */
	int			add_bos;		/* -1: leave out */
} mini;

/* Write a tokenizer-only GGUF file and try to load it. */
static lg_vocab *
load_mini(const mini *m, lg_error *err)
{
	char		path[] = "/tmp/lg_test_vocab_XXXXXX";
	int			fd = mkstemp(path);
	lg_gguf_writer *w = lg_gguf_writer_new();
	uint64_t	lens[64];
	float		scores[64];
	lg_gguf    *g;
	lg_vocab   *v = NULL;

	assert_true(fd >= 0);
	close(fd);
	assert_non_null(w);
	assert_true(m->n_tokens <= 64 && m->n_merges <= 64);
	if (m->model)
		assert_int_equal(lg_gguf_writer_add_str(w, "tokenizer.ggml.model", m->model), LG_OK);
	if (m->pre)
		assert_int_equal(lg_gguf_writer_add_str(w, "tokenizer.ggml.pre", m->pre), LG_OK);
	if (m->tokens)
	{
		for (uint64_t i = 0; i < m->n_tokens; i++)
			lens[i] = strlen(m->tokens[i]);
		assert_int_equal(lg_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", m->tokens, lens,
													m->n_tokens), LG_OK);
	}
	if (m->n_scores)
	{
		for (uint64_t i = 0; i < m->n_scores; i++)
			scores[i] = -(float) i;
		assert_int_equal(lg_gguf_writer_add_arr(w, "tokenizer.ggml.scores", LG_GGUF_FLOAT32,
												scores, m->n_scores), LG_OK);
	}
	if (m->types)
		assert_int_equal(lg_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", LG_GGUF_INT32,
												m->types, m->n_types), LG_OK);
	if (m->merges)
	{
		for (uint64_t i = 0; i < m->n_merges; i++)
			lens[i] = strlen(m->merges[i]);
		assert_int_equal(lg_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", m->merges, lens,
													m->n_merges), LG_OK);
	}
	if (m->bos >= 0)
		assert_int_equal(lg_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t) m->bos),
						 LG_OK);
	if (m->add_bos >= 0)
		assert_int_equal(lg_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", m->add_bos != 0),
						 LG_OK);
	assert_int_equal(lg_gguf_writer_write(w, path, err), LG_OK);
	lg_gguf_writer_free(w);

	g = lg_gguf_open(path, err);
	assert_non_null(g);
	lg_error_clear(err);
	v = lg_vocab_load(g, err);
	lg_gguf_close(g);
	unlink(path);
	return v;
}

static const char *const bpe_tokens[] = {"a", "b", "c", "ab", "abc", "\xC4\xA0", "\xC4\xA0" "a"};
static const char *const bpe_merges[] = {"a b", "ab c", "\xC4\xA0 a"};
static const char *const spm_tokens[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b",
"\xE2\x96\x81" "a", "ab", "<0x41>"};

/* A good baseline for the error cases: byte-level BPE, no pre key. */
static mini
good_bpe(void)
{
	mini		m = {"gpt2", NULL, bpe_tokens, 7, 0, NULL, 0, bpe_merges, 3, -1, -1};

	return m;
}

/* Expect load to fail with status st and a message naming what. */
static void
expect_fail(const mini *m, lg_status st, const char *what)
{
	lg_error	err;
	lg_vocab   *v = load_mini(m, &err);

	if (v != NULL)
		fail_msg("vocabulary loaded although %s", what);
	assert_int_equal(err.status, st);
	if (strstr(err.msg, what) == NULL)
		fail_msg("error '%s' does not mention '%s'", err.msg, what);
}

/* The baseline loads and tokenizes with its merges; absent pre is "default". */
static void
test_mini_bpe_ok(void **state)
{
	lg_error	err;
	mini		m = good_bpe();
	lg_vocab   *v = load_mini(&m, &err);
	lg_token	t[8];

	(void) state;
	if (v == NULL)
		fail_msg("load failed: %s", err.msg);
	assert_string_equal(lg_vocab_type_name(v), "bpe (default)");
	assert_int_equal(lg_tokenize(v, "abc a", 5, false, false, t, 8, &err), 2);
	assert_int_equal(t[0], 4);	/* abc */
	assert_int_equal(t[1], 6);	/* Ġa */
	assert_int_equal(lg_vocab_bos(v), LG_TOKEN_NULL);	/* default 11 is out of range */
	lg_vocab_free(v);

	m.pre = "llama-bpe";
	m.bos = 0;
	v = load_mini(&m, &err);
	if (v == NULL)
		fail_msg("load failed: %s", err.msg);
	assert_true(lg_vocab_add_bos(v));
	assert_int_equal(lg_tokenize(v, "abc", 3, true, false, t, 8, &err), 2);
	assert_int_equal(t[0], 0);
	lg_vocab_free(v);
}

/* A small SPM vocabulary: merges by score, byte fallback, <unk> without bytes. */
static void
test_mini_spm(void **state)
{
	lg_error	err;
	mini		m = {"llama", NULL, spm_tokens, 9, 9, NULL, 0, NULL, 0, -1, -1};
	lg_vocab   *v = load_mini(&m, &err);
	lg_token	t[8];
	char		buf[16];

	(void) state;
	if (v == NULL)
		fail_msg("load failed: %s", err.msg);
	/* "▁ab": ▁a (score -6) beats ab (score -7) */
	assert_int_equal(lg_tokenize(v, "ab", 2, false, false, t, 8, &err), 2);
	assert_int_equal(t[0], 6);
	assert_int_equal(t[1], 5);
	/* "A" has only the byte token (untyped, so NORMAL: shown as its text) */
	assert_int_equal(lg_tokenize(v, "A", 1, false, false, t, 8, &err), 2);
	assert_int_equal(t[0], 3);
	assert_int_equal(t[1], 8);
	/* "z" has neither a token nor a byte token: <unk> */
	assert_int_equal(lg_tokenize(v, "z", 1, false, false, t, 8, &err), 2);
	assert_int_equal(t[1], 0);
	assert_int_equal(lg_token_to_piece(v, 6, buf, sizeof(buf), false), 2);
	assert_memory_equal(buf, " a", 2);
	lg_vocab_free(v);
}

/* A scores array of the wrong length is refused. */
static void
test_error_scores_count(void **state)
{
	mini		m = {"llama", NULL, spm_tokens, 9, 8, NULL, 0, NULL, 0, -1, -1};

	(void) state;
	expect_fail(&m, LG_ERR_FORMAT, "tokenizer.ggml.scores");
}

/* Token types outside 0..6, or too few of them, are refused. */
static void
test_error_token_type(void **state)
{
	static const int32_t types[9] = {2, 3, 3, 1, 1, 1, 1, 1, 9};
	mini		m = {"llama", NULL, spm_tokens, 9, 9, types, 9, NULL, 0, -1, -1};

	(void) state;
	expect_fail(&m, LG_ERR_FORMAT, "token_type");
	m.n_types = 8;
	expect_fail(&m, LG_ERR_FORMAT, "token_type");
}

/* Merges naming unknown tokens, without a space, or missing are refused. */
static void
test_error_merges(void **state)
{
	static const char *const bad_ref[] = {"a b", "x y"};
	static const char *const no_space[] = {"ab"};
	mini		m = good_bpe();

	(void) state;
	m.merges = bad_ref;
	m.n_merges = 2;
	expect_fail(&m, LG_ERR_FORMAT, "not in the vocabulary");
	m.merges = no_space;
	m.n_merges = 1;
	expect_fail(&m, LG_ERR_FORMAT, "no space");
	m.merges = NULL;
	expect_fail(&m, LG_ERR_FORMAT, "tokenizer.ggml.merges");
}

/*
 * An id outside the vocabulary disables that token, as llama.cpp does
 * (converters write -1 or UINT32_MAX for "none"); it is an error only when
 * the metadata also asks for the token to be added.
 */
static void
test_error_ids(void **state)
{
	mini		m = good_bpe();
	lg_error	err;
	lg_vocab   *v;

	(void) state;
	m.bos = 7;
	v = load_mini(&m, &err);
	if (v == NULL)
		fail_msg("load failed: %s", err.msg);
	assert_int_equal(lg_vocab_bos(v), LG_TOKEN_NULL);
	lg_vocab_free(v);
	m.add_bos = 1;
	expect_fail(&m, LG_ERR_FORMAT, "add_bos_token");
	/* add_bos without a BOS id: the default (11) is out of range here */
	m.bos = -1;
	expect_fail(&m, LG_ERR_FORMAT, "add_bos_token");
}

/* Unknown models and pre-tokenizers, missing keys and duplicate tokens. */
static void
test_error_model_and_pre(void **state)
{
	static const char *const dup[] = {"a", "b", "a"};
	mini		m = good_bpe();

	(void) state;
	m.pre = "no-such-pre";
	expect_fail(&m, LG_ERR_UNSUPPORTED, "no-such-pre");
	m = good_bpe();
	m.model = "t5";
	expect_fail(&m, LG_ERR_UNSUPPORTED, "t5");
	m = good_bpe();
	m.model = NULL;
	expect_fail(&m, LG_ERR_FORMAT, "tokenizer.ggml.model");
	m = good_bpe();
	m.tokens = NULL;
	expect_fail(&m, LG_ERR_FORMAT, "tokenizer.ggml.tokens");
	m = good_bpe();
	m.tokens = dup;
	m.n_tokens = 3;
	m.merges = NULL;
	m.n_merges = 0;
	m.model = "llama";
	expect_fail(&m, LG_ERR_FORMAT, "duplicate");
}

/* Every known pre-tokenizer compiles and splits some text. */
static void
test_all_pretokenizers(void **state)
{
	static const char *const pres[] = {
		"default", "llama3", "llama-bpe", "deepseek-llm", "deepseek-coder", "deepseek-v3",
		"falcon", "mpt", "starcoder", "gpt-2", "refact", "command-r", "stablelm2", "qwen2",
		"olmo", "dbrx", "smaug-bpe", "poro-chat", "chatglm-bpe", "viking", "jais", "tekken",
		"smollm", "codeshell", "bloom", "gpt3-finnish", "exaone", "chameleon", "minerva-7b",
		"megrez", "gpt-4o", "superbpe", "trillion", "bailingmoe", "seed-coder", "hunyuan",
		"kimi-k2", "afmoe", "qwen35", "jais-2", "youtu", "tiny_aya", "exaone-moe", "laguna",
		"granite-embed-multi-97m", "minicpm5", "spark2_5", "ufakzeka", "gemma4", NULL
	};
	static const char text[] = "Hello, y'all! 1234567 \xE6\x88\x91\xE6\x83\xB3 caf\xC3\xA9  \n\n x~";

	(void) state;
	for (int i = 0; pres[i] != NULL; i++)
	{
		lg_error	err;
		mini		m = good_bpe();
		lg_vocab   *v;
		lg_token	t[256];
		int64_t		n;

		m.pre = pres[i];
		if (strcmp(pres[i], "chatglm-bpe") != 0 && strcmp(pres[i], "gemma4") != 0)
			m.bos = 0;
		m.add_bos = strcmp(pres[i], "chatglm-bpe") == 0 ? 0 : -1;
		if (strcmp(pres[i], "gemma4") == 0)
			m.bos = 0;
		v = load_mini(&m, &err);
		if (v == NULL)
			fail_msg("pre-tokenizer %s: %s", pres[i], err.msg);
		n = lg_tokenize(v, text, sizeof(text) - 1, true, true, t, 256, &err);
		if (n < 0)
			fail_msg("pre-tokenizer %s: %s", pres[i], err.msg);
		lg_vocab_free(v);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_llama_spm),
		cmocka_unit_test(test_fixture_phi_3),
		cmocka_unit_test(test_fixture_gpt_2),
		cmocka_unit_test(test_fixture_bert_bge),
		cmocka_unit_test(test_fixture_deepseek_llm),
		cmocka_unit_test(test_fixture_mpt),
		cmocka_unit_test(test_round_trip_llama_spm),
		cmocka_unit_test(test_round_trip_phi_3),
		cmocka_unit_test(test_round_trip_deepseek_llm),
		cmocka_unit_test(test_round_trip_gpt_2),
		cmocka_unit_test(test_round_trip_mpt),
		cmocka_unit_test(test_spm_invalid_utf8_round_trip),
		cmocka_unit_test(test_special_tokens_spm),
		cmocka_unit_test(test_special_tokens_phi3),
		cmocka_unit_test(test_special_tokens_bpe),
		cmocka_unit_test(test_bos_from_metadata),
		cmocka_unit_test(test_token_to_piece),
		cmocka_unit_test(test_detokenize_spm),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_mini_bpe_ok),
		cmocka_unit_test(test_mini_spm),
		cmocka_unit_test(test_error_scores_count),
		cmocka_unit_test(test_error_token_type),
		cmocka_unit_test(test_error_merges),
		cmocka_unit_test(test_error_ids),
		cmocka_unit_test(test_error_model_and_pre),
		cmocka_unit_test(test_all_pretokenizers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
