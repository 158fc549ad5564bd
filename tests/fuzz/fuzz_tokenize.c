/*
 * fuzz_tokenize.c — libFuzzer target for the tokenizers.
 *
 * Small vocabularies of every family are built once with the GGUF writer
 * (one byte-level BPE vocabulary per known pre-tokenizer), so the target
 * needs no fixture; when $LLAMAGPU_SHARED/fixtures/tokenizer holds the real
 * llama.cpp vocabularies they are fuzzed too.  The first input byte picks
 * the vocabulary and the flags, the rest is the text.  Besides crashes the
 * target checks that tokenize and detokenize report the same sizes however
 * much room they are given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "vocab.h"

#define MAX_VOCABS 96
#define MAX_TOKENS 1024

static lg_vocab *vocabs[MAX_VOCABS];
static int	n_vocabs;

/* Token list under construction. */
typedef struct toklist
{
	char	   *s[MAX_TOKENS];
	uint64_t	len[MAX_TOKENS];
	float		score[MAX_TOKENS];
	int32_t		type[MAX_TOKENS];
	int			n;
} toklist;

/* Add a token (copied). */
static void
tl_add(toklist *tl, const char *s, size_t len, float score, int32_t type)
{
	if (tl->n >= MAX_TOKENS)
		abort();
	tl->s[tl->n] = malloc(len + 1);
	memcpy(tl->s[tl->n], s, len);
	tl->s[tl->n][len] = '\0';
	tl->len[tl->n] = len;
	tl->score[tl->n] = score;
	tl->type[tl->n] = type;
	tl->n++;
}

/* Add a C-string token. */
static void
tl_adds(toklist *tl, const char *s, float score, int32_t type)
{
	tl_add(tl, s, strlen(s), score, type);
}

/* Release the copies. */
static void
tl_free(toklist *tl)
{
	for (int i = 0; i < tl->n; i++)
		free(tl->s[i]);
	tl->n = 0;
}

/* Encode a code point as UTF-8; returns the length. */
static size_t
utf8(uint32_t c, char *o)
{
	if (c < 0x80)
	{
		o[0] = (char) c;
		return 1;
	}
	if (c < 0x800)
	{
		o[0] = (char) (0xC0 | (c >> 6));
		o[1] = (char) (0x80 | (c & 0x3F));
		return 2;
	}
	o[0] = (char) (0xE0 | (c >> 12));
	o[1] = (char) (0x80 | ((c >> 6) & 0x3F));
	o[2] = (char) (0x80 | (c & 0x3F));
	return 3;
}

/* GPT-2's byte alphabet. */
static uint32_t
byte_cpt(unsigned b)
{
	if (b <= 0x20)
		return 256 + b;
	if (b >= 0x7F && b <= 0xA0)
		return 256 + 33 + (b - 0x7F);
	if (b == 0xAD)
		return 256 + 67;
	return b;
}

/* Write the vocabulary to a temporary file, load it and keep it. */
static void
finish(const char *model, const char *pre, const toklist *tl, const char *const *merges,
	   int n_merges, int bos, int eos)
{
	char		path[] = "/tmp/fuzz_tokenize_XXXXXX";
	int			fd = mkstemp(path);
	lg_gguf_writer *w = lg_gguf_writer_new();
	uint64_t	mlen[64];
	lg_error	err;
	lg_gguf    *g;
	lg_vocab   *v;

	if (fd < 0 || w == NULL || n_vocabs >= MAX_VOCABS)
		abort();
	close(fd);
	lg_gguf_writer_add_str(w, "tokenizer.ggml.model", model);
	if (pre)
		lg_gguf_writer_add_str(w, "tokenizer.ggml.pre", pre);
	lg_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *) tl->s, tl->len,
							   (uint64_t) tl->n);
	lg_gguf_writer_add_arr(w, "tokenizer.ggml.scores", LG_GGUF_FLOAT32, tl->score, (uint64_t) tl->n);
	lg_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", LG_GGUF_INT32, tl->type, (uint64_t) tl->n);
	if (merges)
	{
		for (int i = 0; i < n_merges; i++)
			mlen[i] = strlen(merges[i]);
		lg_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, mlen, (uint64_t) n_merges);
	}
	if (bos >= 0)
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t) bos);
	if (eos >= 0)
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t) eos);
	if (strcmp(model, "bert") == 0)
	{
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 1);
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.seperator_token_id", 3);
	}
	if (lg_gguf_writer_write(w, path, &err) != LG_OK)
		abort();
	lg_gguf_writer_free(w);
	g = lg_gguf_open(path, &err);
	if (g == NULL)
		abort();
	v = lg_vocab_load(g, &err);
	if (v == NULL)
	{
		fprintf(stderr, "fuzz_tokenize: %s/%s: %s\n", model, pre ? pre : "-", err.msg);
		abort();
	}
	lg_gguf_close(g);
	unlink(path);
	vocabs[n_vocabs++] = v;
}

/* SentencePiece vocabulary: specials, byte tokens, a few scored pieces. */
static void
build_spm(void)
{
	static const char *const pieces[] = {
		"\xE2\x96\x81", "a", "b", "e", "h", "t", "\xE2\x96\x81" "a", "ab", "he",
		"\xE2\x96\x81t", "\xE2\x96\x81the", "\xE2\x96\x81\xE2\x96\x81", "\xC3\xA9",
		"\xE6\x88\x91", "1", "12", NULL
	};
	toklist		tl = {0};
	char		buf[8];

	tl_adds(&tl, "<unk>", 0, 2);
	tl_adds(&tl, "<s>", 0, 3);
	tl_adds(&tl, "</s>", 0, 3);
	for (int b = 0; b < 256; b++)
	{
		snprintf(buf, sizeof(buf), "<0x%02X>", b);
		tl_adds(&tl, buf, 0, 6);
	}
	for (int i = 0; pieces[i]; i++)
		tl_adds(&tl, pieces[i], -(float) i, 1);
	tl_adds(&tl, "<|user|>", 0, 4);
	tl_adds(&tl, "<|im_end|>", 0, 3);
	finish("llama", NULL, &tl, NULL, 0, 1, 2);
	tl_free(&tl);
}

/* WordPiece vocabulary. */
static void
build_wpm(void)
{
	static const char *const words[] = {
		"\xE2\x96\x81" "a", "a", "b", "\xE2\x96\x81the", "he", "\xE2\x96\x81" "b",
		"\xE2\x96\x81.", "\xE2\x96\x81,", "\xE2\x96\x81\xE6\x88\x91", "\xE2\x96\x81" "e", NULL
	};
	toklist		tl = {0};

	tl_adds(&tl, "[PAD]", 0, 3);
	tl_adds(&tl, "[UNK]", 0, 3);
	tl_adds(&tl, "[CLS]", 0, 3);
	tl_adds(&tl, "[SEP]", 0, 3);
	tl_adds(&tl, "[MASK]", 0, 3);
	for (int i = 0; words[i]; i++)
		tl_adds(&tl, words[i], 0, 1);
	finish("bert", NULL, &tl, NULL, 0, 2, -1);
	tl_free(&tl);
}

/* Byte-level BPE vocabulary with the given pre-tokenizer. */
static void
build_bpe(const char *model, const char *pre)
{
	static const char *const merges[] = {
		"\xC4\xA0 t", "h e", "\xC4\xA0t he", "i n", "a b", "\xC4\xA0 \xC4\xA0", "1 2",
		"\xC4\x8A \xC4\x8A", "\xE2\x96\x81 a",
	};
	static const char *const merged[] = {
		"\xC4\xA0t", "he", "\xC4\xA0the", "in", "ab", "\xC4\xA0\xC4\xA0", "12",
		"\xC4\x8A\xC4\x8A", "\xE2\x96\x81" "a", "\xE2\x96\x81", NULL
	};
	toklist		tl = {0};
	char		buf[8];

	tl_adds(&tl, "<|endoftext|>", 0, 3);
	for (unsigned b = 0; b < 256; b++)
		tl_add(&tl, buf, utf8(byte_cpt(b), buf), 0, 1);
	for (int i = 0; merged[i]; i++)
		tl_adds(&tl, merged[i], 0, 1);
	for (int b = 0; b < 256; b++)
	{
		snprintf(buf, sizeof(buf), "<0x%02X>", b);
		tl_adds(&tl, buf, 0, 6);
	}
	tl_adds(&tl, "  ", 0, 4);
	tl_adds(&tl, "<|im_end|>", 0, 3);
	tl_adds(&tl, "\n", 0, 1);
	finish(model, pre, &tl, merges, (int) (sizeof(merges) / sizeof(merges[0])), 0, 0);
	tl_free(&tl);
}

/* Load a real vocabulary when the fixtures are around. */
static void
load_fixture(const char *name)
{
	const char *root = getenv("LLAMAGPU_SHARED");
	char		path[4096];
	lg_error	err;
	lg_gguf    *g;
	lg_vocab   *v;

	if (root == NULL || *root == '\0' || n_vocabs >= MAX_VOCABS)
		return;
	snprintf(path, sizeof(path), "%s/fixtures/tokenizer/ggml-vocab-%s.gguf", root, name);
	g = lg_gguf_open(path, &err);
	if (g == NULL)
		return;
	v = lg_vocab_load(g, &err);
	lg_gguf_close(g);
	if (v != NULL)
		vocabs[n_vocabs++] = v;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const pres[] = {
		"default", "llama3", "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon", "mpt",
		"starcoder", "gpt-2", "command-r", "qwen2", "qwen35", "stablelm2", "poro-chat",
		"chatglm-bpe", "viking", "tekken", "bloom", "chameleon", "gpt-4o", "superbpe",
		"bailingmoe", "seed-coder", "kimi-k2", "afmoe", "jais-2", "youtu", "tiny_aya",
		"exaone-moe", "laguna", "granite-embed-multi-97m", "minicpm5", "spark2_5", "ufakzeka",
		"sarvam-moe", NULL
	};
	static const char *const fixtures[] = {"llama-spm", "phi-3", "gpt-2", "bert-bge",
	"deepseek-llm", "mpt", NULL};

	(void) argc;
	(void) argv;
	build_spm();
	build_wpm();
	for (int i = 0; pres[i]; i++)
		build_bpe("gpt2", pres[i]);
	build_bpe("gemma4", NULL);
	for (int i = 0; fixtures[i]; i++)
		load_fixture(fixtures[i]);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lg_token toks[1 << 16];
	static char text[1 << 18];
	lg_vocab   *v;
	const char *s;
	size_t		len;
	bool		add_special,
				parse_special;
	lg_error	err;
	int64_t		n,
				n2,
				d,
				d2;
	lg_token	few[3];
	char		small[5];

	if (size < 1)
		return 0;
	v = vocabs[data[0] % n_vocabs];
	add_special = (data[0] >> 6) & 1;
	parse_special = (data[0] >> 7) & 1;
	s = (const char *) data + 1;
	len = size - 1;

	n = lg_tokenize(v, s, len, add_special, parse_special, toks, 1 << 16, &err);
	if (n < 0)
		return 0;				/* an error is fine; a crash is not */
	n2 = lg_tokenize(v, s, len, add_special, parse_special, few, 3, &err);
	if (n2 != n || (n > 0 && few[0] != toks[0]))
		abort();
	if (n > (1 << 16))
		n = 1 << 16;

	for (int64_t i = 0; i < n; i++)
	{
		char		piece[256];

		if (lg_token_to_piece(v, toks[i], piece, sizeof(piece), i & 1) < 0)
			abort();
	}
	for (int f = 0; f < 4; f++)
	{
		d = lg_detokenize(v, toks, n, text, sizeof(text), f & 1, f & 2);
		d2 = lg_detokenize(v, toks, n, small, sizeof(small), f & 1, f & 2);
		if (d < 0 || d2 != d || (d > 0 && memcmp(small, text, d < 5 ? (size_t) d : 5) != 0))
			abort();
	}
	return 0;
}
