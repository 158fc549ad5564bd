/*
 * fuzz_gbnf.c — libFuzzer target for the GBNF parser and the grammar matcher.
 *
 * Input: grammar text, a NUL byte, then bytes to feed.  A grammar that
 * parses gets a matcher; the bytes go in one at a time and then all at once,
 * and both ways must agree (accepted prefix, completion).  When the llama
 * vocabulary is in $LLAMAGPU_SHARED (default ../shared), inputs whose text
 * length is a multiple of 4 also compare the cached token mask with the slow
 * full walk at the state the bytes reached (after every byte when the text
 * has at most 8 bytes, which exercises the matcher's memory of recent
 * masks).  Only the first MAX_TEXT bytes are fed: each byte may take the
 * matcher's whole expansion budget on an adversarial grammar (nested
 * nullable repetitions under recursion), which is bounded but, under the
 * sanitizers and coverage, about 40 ms a byte; a longer text adds time,
 * not coverage.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "grammar.h"

#define MAX_TEXT 64

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static lg_vocab *vocab;
static lg_grammar_vocab *gvocab;
static int	vocab_tried;

/* Load the 32k llama vocabulary once, if the fixture is there. */
static void
load_vocab(void)
{
	const char *root = getenv("LLAMAGPU_SHARED");
	char		path[4096];
	lg_gguf    *g;

	vocab_tried = 1;
	snprintf(path, sizeof(path), "%s/fixtures/tokenizer/ggml-vocab-llama-spm.gguf", root && *root ? root : "../shared");
	if ((g = lg_gguf_open(path, NULL)) == NULL)
		return;
	vocab = lg_vocab_load(g, NULL);
	lg_gguf_close(g);
	if (vocab != NULL)
		gvocab = lg_grammar_vocab_new(vocab, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t		glen = nul ? (size_t) (nul - data) : size;
	const char *text = nul ? (const char *) nul + 1 : "";
	size_t		tlen = nul ? size - glen - 1 : 0;
	lg_error	err;
	lg_grammar *g;
	lg_grammar_matcher *a,
			   *b;
	size_t		ok = 0;

	if (tlen > MAX_TEXT)
		tlen = MAX_TEXT;
	if (!vocab_tried)
		load_vocab();
	g = lg_grammar_parse((const char *) data, glen, &err);
	if (g == NULL)
	{
		CHECK(err.status == LG_ERR_FORMAT || err.status == LG_ERR_NOMEM);
		CHECK(strncmp(err.msg, "line ", 5) == 0);
		return 0;
	}
	a = lg_grammar_matcher_new(g, gvocab, &err);
	if (a == NULL)
	{
		lg_grammar_free(g);
		return 0;
	}
	b = lg_grammar_matcher_new(g, NULL, &err);
	CHECK(b != NULL);
	if (gvocab != NULL && tlen > 0 && tlen <= 8 && tlen % 4 == 0)
	{
		/* short texts: the cached mask equals the slow walk after every byte */
		size_t		words = ((size_t) lg_grammar_vocab_n_tokens(gvocab) + 63) / 64;
		uint64_t   *fast = malloc(words * 8),
				   *slow = malloc(words * 8);

		CHECK(fast != NULL && slow != NULL);
		do
		{
			lg_grammar_matcher_fill_mask(a, fast);
			CHECK(!lg_grammar_matcher_fill_mask_slow(a, slow) || memcmp(fast, slow, words * 8) == 0);
		} while (ok < tlen && lg_grammar_matcher_accept_bytes(a, text + ok, 1) && ++ok);
		free(fast);
		free(slow);
	}
	while (ok < tlen && lg_grammar_matcher_accept_bytes(a, text + ok, 1))
		ok++;
	/* all at once: the accepted prefix is accepted, one byte more is not */
	CHECK(lg_grammar_matcher_accept_bytes(b, text, ok));
	CHECK(lg_grammar_matcher_is_complete(a) == lg_grammar_matcher_is_complete(b));
	CHECK(lg_grammar_matcher_can_continue(a) == lg_grammar_matcher_can_continue(b));
	if (ok < tlen)
	{
		lg_grammar_matcher_reset(b);
		CHECK(!lg_grammar_matcher_accept_bytes(b, text, ok + 1));
	}
	if (gvocab != NULL && tlen > 0 && tlen % 4 == 0)
	{
		size_t		words = ((size_t) lg_grammar_vocab_n_tokens(gvocab) + 63) / 64;
		uint64_t   *fast = malloc(words * 8),
				   *slow = malloc(words * 8);

		CHECK(fast != NULL && slow != NULL);
		lg_grammar_matcher_fill_mask(a, fast);
		/* equal unless a runtime limit made the slow walk refuse some tokens */
		CHECK(!lg_grammar_matcher_fill_mask_slow(a, slow) || memcmp(fast, slow, words * 8) == 0);
		free(fast);
		free(slow);
	}
	lg_grammar_matcher_free(a);
	lg_grammar_matcher_free(b);
	lg_grammar_free(g);
	return 0;
}
