/*
 * vocab.c — loading a vocabulary from GGUF metadata, special tokens, and the
 * tokenize / detokenize entry points shared by the three tokenizers.
 *
 * The rules follow llama.cpp's llama_vocab::impl::load, tokenize and
 * detokenize.  Where llama.cpp reads past inconsistent arrays (too few
 * scores or types, unknown token types, merges of unknown tokens) or throws
 * later, lg_vocab_load refuses the file with a message instead.
 */
#include "vocab_impl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

/* ---- small helpers ---- */

/* Append t; false when out of memory. */
bool
lg_tokvec_push(lg_tokvec *tv, lg_token t)
{
	if (tv->n == tv->cap)
	{
		size_t		cap = tv->cap ? tv->cap * 2 : 64;
		lg_token   *v = realloc(tv->v, cap * sizeof(lg_token));

		if (v == NULL)
			return false;
		tv->v = v;
		tv->cap = cap;
	}
	tv->v[tv->n++] = t;
	return true;
}

/* A growing byte buffer. */
typedef struct bytebuf
{
	char	   *b;
	size_t		n;
	size_t		cap;
	bool		oom;
} bytebuf;

/* Append n bytes (sets oom instead of failing). */
static void
bb_add(bytebuf *bb, const char *s, size_t n)
{
	if (bb->oom)
		return;
	if (bb->n + n + 1 > bb->cap)
	{
		size_t		cap = (bb->n + n + 1) * 2;
		char	   *b = realloc(bb->b, cap);

		if (b == NULL)
		{
			bb->oom = true;
			return;
		}
		bb->b = b;
		bb->cap = cap;
	}
	if (n > 0)
		memcpy(bb->b + bb->n, s, n);
	bb->n += n;
	bb->b[bb->n] = '\0';
}

/* FNV-1a: token texts are short, and this is enough to spread them. */
static inline uint64_t
hash_bytes(const char *s, size_t n)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
	{
		h ^= (uint8_t) s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

/* Id of a token text, or LG_TOKEN_NULL. */
lg_token
lg_vocab_lookup(const lg_vocab *v, const char *text, size_t len)
{
	size_t		i = hash_bytes(text, len) & v->slot_mask;

	if (len > (size_t) v->max_token_len)
		return LG_TOKEN_NULL;
	for (;;)
	{
		uint32_t	s = v->slots[i];
		const lg_token_data *td;

		if (s == 0)
			return LG_TOKEN_NULL;
		td = &v->tok[s - 1];
		if (td->len == len && memcmp(v->text + td->off, text, len) == 0)
			return (lg_token) (s - 1);
		i = (i + 1) & v->slot_mask;
	}
}

/* Mix a merge key into a slot index. */
static inline size_t
merge_slot(uint64_t key, size_t mask)
{
	key ^= key >> 31;
	key *= 0x9E3779B97F4A7C15ULL;
	key ^= key >> 29;
	return (size_t) key & mask;
}

/* Rank of the merge (left, right), or -1. */
int32_t
lg_vocab_merge_rank(const lg_vocab *v, lg_token left, lg_token right)
{
	uint64_t	key;
	size_t		i;

	if (v->merge_keys == NULL)
		return -1;
	key = ((uint64_t) (uint32_t) (left + 1) << 32) | (uint32_t) (right + 1);
	i = merge_slot(key, v->merge_mask);
	for (;;)
	{
		if (v->merge_keys[i] == 0)
			return -1;
		if (v->merge_keys[i] == key)
			return v->merge_ranks[i];
		i = (i + 1) & v->merge_mask;
	}
}

/* <0xXX> for a byte, else the byte itself as a one-byte token. */
lg_token
lg_vocab_byte_token(const lg_vocab *v, uint8_t byte)
{
	static const char hex[] = "0123456789ABCDEF";
	char		buf[6] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>'};
	lg_token	t = lg_vocab_lookup(v, buf, 6);

	if (t != LG_TOKEN_NULL)
		return t;
	return lg_vocab_lookup(v, (const char *) &byte, 1);
}

/* Byte value of a byte token "<0xXX>" (strtol on text[3..5), as llama.cpp). */
static uint8_t
token_to_byte(const lg_vocab *v, lg_token t)
{
	const char *s = v->text + v->tok[t].off;
	uint32_t	len = v->tok[t].len;
	unsigned	val = 0;

	for (uint32_t i = 3; i < len && i < 5; i++)
	{
		int			c = (unsigned char) s[i];
		int			d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		val = val * 16 + (unsigned) d;
	}
	return (uint8_t) val;
}

/* ---- loading ---- */

/* Look a key up and require an array of the given element type. */
static const lg_gguf_kv *
get_array(const lg_gguf *g, const char *key, lg_error *err, bool *bad)
{
	const lg_gguf_kv *kv = lg_gguf_get(g, key);

	*bad = false;
	if (kv == NULL)
		return NULL;
	if (kv->type != LG_GGUF_ARRAY)
	{
		lg_error_set(err, LG_ERR_FORMAT, "%s is not an array", key);
		*bad = true;
		return NULL;
	}
	return kv;
}

/* Read an optional boolean key; a present key of another type is an error. */
static bool
read_bool(const lg_gguf *g, const char *key, bool *out, lg_error *err)
{
	if (lg_gguf_find_key(g, key) < 0)
		return true;
	if (!lg_gguf_get_bool(g, key, out))
	{
		lg_error_set(err, LG_ERR_FORMAT, "%s is not a boolean", key);
		return false;
	}
	return true;
}

/*
 * Read an optional token id key.  An id outside the vocabulary, default or
 * explicit, disables the token as llama.cpp does (with a warning there);
 * lg_vocab_load fails later if the metadata also asks to add that token.  A
 * value that is not an integer is an error.
 */
static bool
read_id(const lg_gguf *g, const char *key, lg_token *id, int32_t n_tokens, lg_error *err)
{
	int64_t		val;

	if (*id != LG_TOKEN_NULL && (*id < 0 || *id >= n_tokens))
		*id = LG_TOKEN_NULL;
	if (lg_gguf_find_key(g, key) < 0)
		return true;
	if (!lg_gguf_get_i64(g, key, &val))
	{
		lg_error_set(err, LG_ERR_FORMAT, "%s is not an integer", key);
		return false;
	}
	/*
	 * Converters write "no such token" as -1 or as UINT32_MAX; llama.cpp
	 * ignores any id outside the vocabulary with a warning, so do we.
	 */
	if (val < 0 || val >= n_tokens)
	{
		*id = LG_TOKEN_NULL;
		return true;
	}
	*id = (lg_token) val;
	return true;
}

/* Same as read_id, but a value of the wrong type is ignored too. */
static bool
read_id_lenient(const lg_gguf *g, const char *key, lg_token *id, int32_t n_tokens, lg_error *err)
{
	int64_t		val;

	if (*id != LG_TOKEN_NULL && (*id < 0 || *id >= n_tokens))
		*id = LG_TOKEN_NULL;
	if (lg_gguf_find_key(g, key) < 0)
		return true;
	if (lg_gguf_get_i64(g, key, &val) && val >= 0 && val < n_tokens)
		*id = (lg_token) val;
	(void) err;
	return true;
}

/* Smallest power of two >= x (x > 0). */
static size_t
pow2_at_least(size_t x)
{
	size_t		p = 16;

	while (p < x)
		p <<= 1;
	return p;
}

/* Store token texts, scores and types; check sizes, types and duplicates. */
static lg_status
load_tokens(lg_vocab *v, const lg_gguf *g, lg_error *err)
{
	const lg_gguf_kv *tokens,
			   *scores,
			   *types;
	bool		bad;
	size_t		total = 0;
	size_t		off = 0;
	uint64_t	n;

	tokens = get_array(g, "tokenizer.ggml.tokens", err, &bad);
	if (bad)
		return err ? err->status : LG_ERR_FORMAT;
	if (tokens == NULL)
		return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.tokens is missing");
	if (tokens->arr_type != LG_GGUF_STRING)
		return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
	n = tokens->arr_n;
	if (n == 0)
		return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.tokens is empty");
	if (n >= (uint64_t) INT32_MAX)
		return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.tokens has too many entries (%llu)",
							(unsigned long long) n);

	scores = get_array(g, "tokenizer.ggml.scores", err, &bad);
	if (bad)
		return err ? err->status : LG_ERR_FORMAT;
	if (scores != NULL)
	{
		if (scores->arr_type != LG_GGUF_FLOAT32 && scores->arr_type != LG_GGUF_INT32)
			return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.scores is not float32 or int32");
		if (scores->arr_n != n)
			return lg_error_set(err, LG_ERR_FORMAT,
								"tokenizer.ggml.scores has %llu entries for %llu tokens",
								(unsigned long long) scores->arr_n, (unsigned long long) n);
	}
	types = get_array(g, "tokenizer.ggml.token_type", err, &bad);
	if (bad)
		return err ? err->status : LG_ERR_FORMAT;
	if (types != NULL)
	{
		if (types->arr_type != LG_GGUF_INT32)
			return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.token_type is not int32");
		if (types->arr_n != n)
			return lg_error_set(err, LG_ERR_FORMAT,
								"tokenizer.ggml.token_type has %llu entries for %llu tokens",
								(unsigned long long) types->arr_n, (unsigned long long) n);
	}

	v->n_tokens = (int32_t) n;
	v->tok = calloc(n, sizeof(lg_token_data));
	if (v->tok == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory loading the vocabulary");
	for (uint64_t i = 0; i < n; i++)
	{
		uint64_t	len = tokens->arr_strs[i].len;

		if (len >= UINT32_MAX / 2)
			return lg_error_set(err, LG_ERR_FORMAT, "token %llu is too long",
								(unsigned long long) i);
		/* an empty token becomes "[EMPTY_<id>]", as llama.cpp names it */
		total += len ? len : 32;
	}
	v->text = malloc(total + 1);
	if (v->text == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory loading the vocabulary");

	for (uint64_t i = 0; i < n; i++)
	{
		lg_token_data *td = &v->tok[i];
		const lg_gguf_str *s = &tokens->arr_strs[i];

		td->off = off;
		if (s->len == 0)
			td->len = (uint32_t) snprintf(v->text + off, 32, "[EMPTY_%llu]", (unsigned long long) i);
		else
		{
			memcpy(v->text + off, s->s, s->len);
			td->len = (uint32_t) s->len;
		}
		off += td->len;
		if ((int32_t) td->len > v->max_token_len)
			v->max_token_len = (int32_t) td->len;

		td->score = 0.0f;
		if (scores != NULL)
		{
			if (scores->arr_type == LG_GGUF_FLOAT32)
				memcpy(&td->score, scores->arr_data + i * 4, 4);
			else
			{
				int32_t		is;

				memcpy(&is, scores->arr_data + i * 4, 4);
				td->score = (float) is;
			}
		}

		td->attr = LG_ATTR_NORMAL;
		if (types != NULL)
		{
			int32_t		tt;

			memcpy(&tt, types->arr_data + i * 4, 4);
			switch (tt)
			{
				case LG_TOKEN_TYPE_UNDEFINED:
					td->attr = LG_ATTR_UNDEFINED;
					break;
				case LG_TOKEN_TYPE_NORMAL:
					td->attr = LG_ATTR_NORMAL;
					break;
				case LG_TOKEN_TYPE_UNKNOWN:
					td->attr = LG_ATTR_UNKNOWN;
					break;
				case LG_TOKEN_TYPE_CONTROL:
					td->attr = LG_ATTR_CONTROL;
					break;
				case LG_TOKEN_TYPE_USER_DEFINED:
					td->attr = LG_ATTR_USER_DEFINED;
					break;
				case LG_TOKEN_TYPE_UNUSED:
					td->attr = LG_ATTR_UNUSED;
					break;
				case LG_TOKEN_TYPE_BYTE:
					td->attr = LG_ATTR_BYTE;
					break;
				default:
					return lg_error_set(err, LG_ERR_FORMAT,
										"tokenizer.ggml.token_type[%llu] = %d is not a token type",
										(unsigned long long) i, tt);
			}
		}
	}

	/* index the texts; a text twice is an error, as in llama.cpp */
	v->slot_mask = pow2_at_least(n * 2) - 1;
	v->slots = calloc(v->slot_mask + 1, sizeof(uint32_t));
	if (v->slots == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory loading the vocabulary");
	for (uint64_t i = 0; i < n; i++)
	{
		const lg_token_data *td = &v->tok[i];
		size_t		h = hash_bytes(v->text + td->off, td->len) & v->slot_mask;

		while (v->slots[h] != 0)
		{
			const lg_token_data *o = &v->tok[v->slots[h] - 1];

			if (o->len == td->len && memcmp(v->text + o->off, v->text + td->off, td->len) == 0)
				return lg_error_set(err, LG_ERR_FORMAT,
									"duplicate token in vocabulary: '%.*s' has ids %u and %llu",
									(int) (td->len > 64 ? 64 : td->len), v->text + td->off,
									v->slots[h] - 1, (unsigned long long) i);
			h = (h + 1) & v->slot_mask;
		}
		v->slots[h] = (uint32_t) i + 1;
	}
	return LG_OK;
}

/*
 * Read the merges ("left right", rank = position).  Both halves must be
 * tokens: Hugging Face refuses such files too, and it lets the BPE loop look
 * merges up by token id.
 */
static lg_status
load_merges(lg_vocab *v, const lg_gguf *g, bool required, lg_error *err)
{
	bool		bad;
	const lg_gguf_kv *merges = get_array(g, "tokenizer.ggml.merges", err, &bad);

	if (bad)
		return err ? err->status : LG_ERR_FORMAT;
	if (merges == NULL)
	{
		if (required)
			return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.merges is missing");
		return LG_OK;
	}
	if (merges->arr_type != LG_GGUF_STRING)
		return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
	if (merges->arr_n >= (uint64_t) INT32_MAX)
		return lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.merges has too many entries");

	v->merge_mask = pow2_at_least(merges->arr_n * 2 + 1) - 1;
	v->merge_keys = calloc(v->merge_mask + 1, sizeof(uint64_t));
	v->merge_ranks = malloc((v->merge_mask + 1) * sizeof(int32_t));
	if (v->merge_keys == NULL || v->merge_ranks == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory loading merges");

	for (uint64_t i = 0; i < merges->arr_n; i++)
	{
		const lg_gguf_str *m = &merges->arr_strs[i];
		const char *sp = m->len > 1 ? memchr(m->s + 1, ' ', m->len - 1) : NULL;
		lg_token	l,
					r;
		uint64_t	key;
		size_t		h;

		/* llama.cpp splits at the first space after the first byte */
		if (sp == NULL)
			return lg_error_set(err, LG_ERR_FORMAT,
								"tokenizer.ggml.merges[%llu] '%.*s' has no space",
								(unsigned long long) i, (int) (m->len > 64 ? 64 : m->len), m->s);
		l = lg_vocab_lookup(v, m->s, (size_t) (sp - m->s));
		r = lg_vocab_lookup(v, sp + 1, m->len - (size_t) (sp - m->s) - 1);
		if (l == LG_TOKEN_NULL || r == LG_TOKEN_NULL)
			return lg_error_set(err, LG_ERR_FORMAT,
								"tokenizer.ggml.merges[%llu] '%.*s' names a token not in the vocabulary",
								(unsigned long long) i, (int) (m->len > 64 ? 64 : m->len), m->s);
		key = ((uint64_t) (uint32_t) (l + 1) << 32) | (uint32_t) (r + 1);
		h = merge_slot(key, v->merge_mask);
		while (v->merge_keys[h] != 0 && v->merge_keys[h] != key)
			h = (h + 1) & v->merge_mask;
		if (v->merge_keys[h] == key)
			continue;			/* the first rank wins, as with emplace */
		v->merge_keys[h] = key;
		v->merge_ranks[h] = (int32_t) i;
	}
	return LG_OK;
}

/* Texts that name end-of-turn tokens, in llama.cpp's EOT detection. */
static const char *const eot_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
	"<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
	"<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
	"<end_of_utterance>", NULL
};

/* Texts that end generation (llama.cpp's special_eog_ids detection). */
static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
	"<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
	"_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
	"<turn|>", "<|tool_response>",
	"<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
	"[e~[", NULL
};

static const char *const fim_pre_texts[] = {
	"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
	"<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>", LG_SPM_SPACE "<PRE>",
	"<|code_prefix|>", "<|prefix|>", NULL
};
static const char *const fim_suf_texts[] = {
	"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
	"<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>", "<SUF>", LG_SPM_SPACE "<SUF>",
	"<|code_suffix|>", "<|suffix|>", NULL
};
static const char *const fim_mid_texts[] = {
	"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
	"<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>", LG_SPM_SPACE "<MID>",
	"<|code_middle|>", "<|middle|>", NULL
};
static const char *const fim_pad_texts[] = {
	"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL
};
static const char *const fim_rep_texts[] = {
	"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL
};
static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};

/* Find a token by exact text (C string). */
static lg_token
find_text(const lg_vocab *v, const char *s)
{
	return lg_vocab_lookup(v, s, strlen(s));
}

/*
 * If *id is unset, take the listed token with the lowest id and make it a
 * control token.  llama.cpp walks an unordered map, so which of several
 * candidates wins there is unspecified; the lowest id is at least stable.
 */
static void
detect_by_text(lg_vocab *v, lg_token *id, const char *const *list)
{
	lg_token	best = LG_TOKEN_NULL;

	if (*id != LG_TOKEN_NULL)
		return;
	for (int i = 0; list[i] != NULL; i++)
	{
		lg_token	t = find_text(v, list[i]);

		if (t != LG_TOKEN_NULL && (best == LG_TOKEN_NULL || t < best))
			best = t;
	}
	if (best != LG_TOKEN_NULL)
	{
		*id = best;
		v->tok[best].attr |= LG_ATTR_CONTROL;
	}
}

/* The token with this text if it ends generation, else LG_TOKEN_NULL. */
static lg_token
eog_text(const lg_vocab *v, const char *s)
{
	lg_token	t = find_text(v, s);

	return (t != LG_TOKEN_NULL && v->eog[t]) ? t : LG_TOKEN_NULL;
}

/* EOT/EOM/FIM detection, unused marking and the end-of-generation set. */
static lg_status
setup_special(lg_vocab *v, lg_error *err)
{
	lg_token	end_id;
	lg_token	s_id;
	bool		has_return,
				has_call,
				has_flush;

	detect_by_text(v, &v->eot, eot_texts);
	detect_by_text(v, &v->eom, eom_texts);
	detect_by_text(v, &v->fim_pre, fim_pre_texts);
	detect_by_text(v, &v->fim_suf, fim_suf_texts);
	detect_by_text(v, &v->fim_mid, fim_mid_texts);
	detect_by_text(v, &v->fim_pad, fim_pad_texts);
	detect_by_text(v, &v->fim_rep, fim_rep_texts);
	detect_by_text(v, &v->fim_sep, fim_sep_texts);

	/* control tokens with "unused" in their text are unused */
	for (lg_token t = 0; t < v->n_tokens; t++)
	{
		lg_token_data *td = &v->tok[t];

		if ((td->attr & LG_ATTR_CONTROL) && !(td->attr & LG_ATTR_UNUSED) &&
			memmem(v->text + td->off, td->len, "unused", 6) != NULL)
			td->attr |= LG_ATTR_UNUSED;
	}

	v->eog = calloc((size_t) v->n_tokens, 1);
	if (v->eog == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory loading the vocabulary");
	if (v->fim_pad != LG_TOKEN_NULL)
		v->eog[v->fim_pad] = 1;
	if (v->fim_rep != LG_TOKEN_NULL)
		v->eog[v->fim_rep] = 1;
	if (v->fim_sep != LG_TOKEN_NULL)
		v->eog[v->fim_sep] = 1;
	for (int i = 0; eog_texts[i] != NULL; i++)
	{
		lg_token	t = find_text(v, eog_texts[i]);

		if (t != LG_TOKEN_NULL)
		{
			v->eog[t] = 1;
			v->tok[t].attr |= LG_ATTR_CONTROL;
		}
	}

	/* gpt-oss: these always render, so they are user-defined */
	{
		static const char *const always[] = {"<|channel|>", "<|message|>", "<|start|>",
		"<|constrain|>", NULL};

		for (int i = 0; always[i] != NULL; i++)
		{
			lg_token	t = find_text(v, always[i]);

			if (t != LG_TOKEN_NULL)
				v->tok[t].attr = LG_ATTR_USER_DEFINED;
		}
	}

	if (v->eos != LG_TOKEN_NULL)
		v->eog[v->eos] = 1;
	if (v->eot != LG_TOKEN_NULL)
		v->eog[v->eot] = 1;
	if (v->eom != LG_TOKEN_NULL)
		v->eog[v->eom] = 1;

	/* o200k_harmony and solar-open: "<|end|>" ends a message, not generation */
	end_id = eog_text(v, "<|end|>");
	has_return = eog_text(v, "<|return|>") != LG_TOKEN_NULL;
	has_call = eog_text(v, "<|call|>") != LG_TOKEN_NULL || eog_text(v, "<|calls|>") != LG_TOKEN_NULL;
	has_flush = eog_text(v, "<|flush|>") != LG_TOKEN_NULL;
	if (end_id != LG_TOKEN_NULL && ((has_return && has_call) || (has_call && has_flush)))
	{
		v->eog[end_id] = 0;
		v->tok[end_id].attr = LG_ATTR_USER_DEFINED;
	}

	/* Gemma 4 and PaddleOCR: "</s>" is not an end of generation */
	s_id = eog_text(v, "</s>");
	if (s_id != LG_TOKEN_NULL && eog_text(v, "<|tool_response>") != LG_TOKEN_NULL)
	{
		v->eog[s_id] = 0;
		v->tok[s_id].attr = LG_ATTR_NORMAL;
	}
	return LG_OK;
}

/* Sort key for the special-token cache. */
typedef struct special_key
{
	uint32_t	len;
	lg_token	id;
} special_key;

/* Longer texts first; equal lengths by id. */
static int
cmp_special(const void *a, const void *b)
{
	const special_key *ka = a;
	const special_key *kb = b;

	if (ka->len != kb->len)
		return ka->len > kb->len ? -1 : 1;
	return ka->id < kb->id ? -1 : (ka->id > kb->id);
}

/*
 * Collect the tokens matched as whole strings before tokenizing, longest
 * first.  llama.cpp's std::sort leaves equal lengths in no particular order;
 * that only matters for overlapping texts, and by id is at least stable.
 */
static lg_status
build_special_cache(lg_vocab *v, lg_error *err)
{
	special_key *keys;
	int32_t		n = 0;

	for (lg_token t = 0; t < v->n_tokens; t++)
		if (v->tok[t].attr & (LG_ATTR_CONTROL | LG_ATTR_USER_DEFINED | LG_ATTR_UNKNOWN))
			n++;
	keys = malloc(((size_t) n + 1) * sizeof(special_key));
	v->special = malloc(((size_t) n + 1) * sizeof(lg_token));
	if (keys == NULL || v->special == NULL)
	{
		free(keys);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory loading the vocabulary");
	}
	for (lg_token t = 0; t < v->n_tokens; t++)
		if (v->tok[t].attr & (LG_ATTR_CONTROL | LG_ATTR_USER_DEFINED | LG_ATTR_UNKNOWN))
			keys[v->n_special++] = (special_key) {v->tok[t].len, t};
	qsort(keys, (size_t) v->n_special, sizeof(special_key), cmp_special);
	for (int32_t i = 0; i < v->n_special; i++)
		v->special[i] = keys[i].id;
	free(keys);
	return LG_OK;
}

/* Build the byte trie of the special texts. */
static lg_status
build_special_trie(lg_vocab *v, lg_error *err)
{
	size_t		cap = 0;

	for (int32_t k = 0; k < v->n_special; k++)
		cap += v->tok[v->special[k]].len;
	if (cap >= (size_t) INT32_MAX)
		return lg_error_set(err, LG_ERR_FORMAT, "special tokens are too long");
	v->trie_child = malloc((cap + 1) * sizeof(int32_t));
	v->trie_next = malloc((cap + 1) * sizeof(int32_t));
	v->trie_special = malloc((cap + 1) * sizeof(int32_t));
	v->trie_byte = malloc(cap + 1);
	if (v->trie_child == NULL || v->trie_next == NULL || v->trie_special == NULL ||
		v->trie_byte == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory loading the vocabulary");
	for (int i = 0; i < 256; i++)
		v->trie_root[i] = -1;

	for (int32_t k = 0; k < v->n_special; k++)
	{
		const lg_token_data *td = &v->tok[v->special[k]];
		const uint8_t *s = (const uint8_t *) v->text + td->off;
		int32_t    *link = &v->trie_root[s[0]];
		int32_t		node = -1;

		for (uint32_t i = 0; i < td->len; i++)
		{
			/* find the child for s[i] in the sibling list at *link */
			int32_t    *p = link;

			while (*p != -1 && v->trie_byte[*p] != s[i])
				p = &v->trie_next[*p];
			if (*p == -1)
			{
				node = v->trie_n++;
				v->trie_byte[node] = s[i];
				v->trie_child[node] = -1;
				v->trie_next[node] = -1;
				v->trie_special[node] = -1;
				*p = node;
			}
			node = *p;
			link = &v->trie_child[node];
		}
		v->trie_special[node] = k;
	}
	return LG_OK;
}

/* Mark in present[] the special texts that occur somewhere in text. */
static void
special_present(const lg_vocab *v, const char *text, size_t len, uint8_t *present)
{
	const uint8_t *t = (const uint8_t *) text;

	for (size_t p = 0; p < len; p++)
	{
		int32_t		node = v->trie_root[t[p]];
		size_t		q = p;

		while (node != -1)
		{
			if (v->trie_special[node] >= 0)
				present[v->trie_special[node]] = 1;
			if (++q >= len)
				break;
			node = v->trie_child[node];
			while (node != -1 && v->trie_byte[node] != t[q])
				node = v->trie_next[node];
		}
	}
}

/* Replace every U+2581 with a space. */
static void
unescape_spaces(bytebuf *bb, const char *s, size_t n)
{
	size_t		i = 0;

	while (i < n)
	{
		if (i + LG_SPM_SPACE_LEN <= n && memcmp(s + i, LG_SPM_SPACE, LG_SPM_SPACE_LEN) == 0)
		{
			bb_add(bb, " ", 1);
			i += LG_SPM_SPACE_LEN;
		}
		else
		{
			bb_add(bb, s + i, 1);
			i++;
		}
	}
}

/* GPT-2 byte-level decoding of a token text (llama_decode_text). */
static void
decode_byte_level(bytebuf *bb, const char *s, size_t n)
{
	size_t		off = 0;

	while (off < n)
	{
		uint32_t	cpt = lg_utf8_decode(s, n, &off);
		int			b = lg_unicode_cpt_to_byte(cpt);

		if (b >= 0)
		{
			char		c = (char) b;

			bb_add(bb, &c, 1);
		}
		else
		{
			/* llama.cpp's marker for characters outside the byte alphabet */
			char		u[4];
			size_t		ul = lg_utf8_encode(cpt, u);
			static const char digits[] = "0123456789abcdef";

			bb_add(bb, "[UNK_BYTE_0x", 12);
			for (size_t k = 0; k < ul; k++)
			{
				char		hex[2] = {digits[(uint8_t) u[k] >> 4], digits[(uint8_t) u[k] & 15]};

				bb_add(bb, hex, 2);
			}
			bb_add(bb, s, n);
			bb_add(bb, "]", 1);
		}
	}
}

/* The piece of token t as llama_token_to_piece(special = true) makes it. */
static void
make_piece(const lg_vocab *v, lg_token t, bytebuf *bb)
{
	const lg_token_data *td = &v->tok[t];
	const char *s = v->text + td->off;

	if (td->attr & (LG_ATTR_UNKNOWN | LG_ATTR_CONTROL | LG_ATTR_USER_DEFINED))
		bb_add(bb, s, td->len);
	else if (td->attr & LG_ATTR_NORMAL)
	{
		if (v->type == LG_VOCAB_BPE && !v->escape_spaces)
			decode_byte_level(bb, s, td->len);
		else
			unescape_spaces(bb, s, td->len);
	}
	else if (td->attr & LG_ATTR_BYTE)
	{
		char		c = (char) token_to_byte(v, t);

		bb_add(bb, &c, 1);
	}
	/* other attributes (undefined, unused) render as nothing */
}

/* Precompute every token's piece. */
static lg_status
build_piece_cache(lg_vocab *v, lg_error *err)
{
	bytebuf		bb = {NULL, 0, 0, false};

	for (lg_token t = 0; t < v->n_tokens; t++)
	{
		size_t		start = bb.n;

		make_piece(v, t, &bb);
		if (bb.n - start >= (size_t) INT32_MAX)
		{
			free(bb.b);
			return lg_error_set(err, LG_ERR_FORMAT, "token %d is too long", t);
		}
		v->tok[t].piece_off = start;
		v->tok[t].piece_len = (uint32_t) (bb.n - start);
	}
	bb_add(&bb, "", 0);
	if (bb.oom)
	{
		free(bb.b);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory loading the vocabulary");
	}
	v->pieces = bb.b;
	return LG_OK;
}

/* Case-insensitive substring test on a GGUF string value. */
static bool
str_contains_ci(const lg_gguf *g, const char *key, const char *needle, bool fold)
{
	lg_gguf_str s;
	size_t		nl = strlen(needle);

	if (!lg_gguf_get_str(g, key, &s) || s.len < nl)
		return false;
	for (size_t i = 0; i + nl <= s.len; i++)
	{
		size_t		k;

		for (k = 0; k < nl; k++)
		{
			int			c = (unsigned char) s.s[i + k];

			if (fold)
				c = tolower(c);
			if (c != needle[k])
				break;
		}
		if (k == nl)
			return true;
	}
	return false;
}

/* Per-model strip attributes llama.cpp sets by model or tokenizer name. */
static void
set_model_attrs(lg_vocab *v, const lg_gguf *g)
{
	if (str_contains_ci(g, "tokenizer.ggml.pre", "jina-v2-de", false) ||
		str_contains_ci(g, "tokenizer.ggml.pre", "jina-v2-es", false) ||
		str_contains_ci(g, "tokenizer.ggml.pre", "jina-v2-code", false) ||
		str_contains_ci(g, "general.architecture", "nomic-bert-moe", false) ||
		str_contains_ci(g, "general.architecture", "jina-bert-v3", false))
	{
		lg_token	t = find_text(v, "<mask>");

		if (t != LG_TOKEN_NULL)
			v->tok[t].attr |= LG_ATTR_LSTRIP;
	}
	else if (str_contains_ci(g, "general.name", "phi-3", true) ||
			 str_contains_ci(g, "general.name", "phi3", true))
	{
		static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>", NULL};
		lg_token	t;

		for (int32_t i = 0; i < v->n_special; i++)
			v->tok[v->special[i]].attr |= LG_ATTR_RSTRIP;
		if ((t = find_text(v, "</s>")) != LG_TOKEN_NULL)
			v->tok[t].attr |= LG_ATTR_RSTRIP;
		for (int i = 0; keep[i] != NULL; i++)
			if ((t = find_text(v, keep[i])) != LG_TOKEN_NULL)
				v->tok[t].attr &= ~LG_ATTR_RSTRIP;
	}
	else if (str_contains_ci(g, "general.name", "modern-bert", true))
	{
		lg_token	t = find_text(v, "[MASK]");

		if (t != LG_TOKEN_NULL)
			v->tok[t].attr |= LG_ATTR_LSTRIP;
	}
}

/* Build the tokenizer from g's metadata. */
lg_vocab *
lg_vocab_load(const lg_gguf *g, lg_error *err)
{
	lg_vocab   *v;
	lg_gguf_str model;
	lg_gguf_str pre_str = {NULL, 0};
	const lg_pretok_def *pdef = NULL;
	bool		merges_required = true;
	lg_status	st;

	if (g == NULL)
	{
		lg_error_set(err, LG_ERR_ARG, "no GGUF file given");
		return NULL;
	}
	if (lg_gguf_find_key(g, "tokenizer.ggml.model") < 0)
	{
		lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.model is missing");
		return NULL;
	}
	if (!lg_gguf_get_str(g, "tokenizer.ggml.model", &model))
	{
		lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.model is not a string");
		return NULL;
	}
	if (lg_gguf_find_key(g, "tokenizer.ggml.pre") >= 0 &&
		!lg_gguf_get_str(g, "tokenizer.ggml.pre", &pre_str))
	{
		lg_error_set(err, LG_ERR_FORMAT, "tokenizer.ggml.pre is not a string");
		return NULL;
	}

	v = calloc(1, sizeof(lg_vocab));
	if (v == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory loading the vocabulary");
		return NULL;
	}
	v->eot = v->eom = v->sep = v->pad = v->mask = LG_TOKEN_NULL;
	v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = LG_TOKEN_NULL;
	v->lowercase = true;
	v->strip_accents = true;

	if (lg_gguf_str_eq(model, "llama"))
	{
		v->type = LG_VOCAB_SPM;
		v->bos = 1;
		v->eos = 2;
		v->unk = 0;
		v->add_space_prefix = true;
		v->add_bos = true;
		snprintf(v->type_name, sizeof(v->type_name), "spm");
	}
	else if (lg_gguf_str_eq(model, "bert"))
	{
		v->type = LG_VOCAB_WPM;
		v->bos = 101;
		v->eos = LG_TOKEN_NULL;
		v->unk = 100;
		v->sep = 102;
		v->pad = 0;
		v->mask = 103;
		v->add_bos = true;
		v->add_sep = true;
		v->clean_spaces = true;
		snprintf(v->type_name, sizeof(v->type_name), "wpm");
	}
	else if (lg_gguf_str_eq(model, "gpt2") || lg_gguf_str_eq(model, "gemma4"))
	{
		v->type = LG_VOCAB_BPE;
		v->bos = 11;
		v->eos = 11;
		v->unk = LG_TOKEN_NULL;
		v->clean_spaces = true;
		if (lg_gguf_str_eq(model, "gemma4"))
		{
			/* the model name implies the pre-tokenizer and no default ids */
			pdef = lg_pretok_find("gemma4", 6);
			v->bos = v->eos = LG_TOKEN_NULL;
		}
		else if (pre_str.len == 0)
			pdef = lg_pretok_find("default", 7);	/* llama.cpp warns and goes on */
		else
		{
			pdef = lg_pretok_find(pre_str.s, pre_str.len);
			if (pdef == NULL)
			{
				lg_error_set(err, LG_ERR_UNSUPPORTED, "unknown pre-tokenizer type: '%.*s'",
							 (int) (pre_str.len > 64 ? 64 : pre_str.len), pre_str.s);
				goto fail;
			}
		}
		if (strcmp(pdef->name, "kimi-k2") == 0)
			merges_required = false;
		snprintf(v->type_name, sizeof(v->type_name), "bpe (%s)", pdef->name);
		v->clean_spaces = !(pdef->flags & LG_PRE_NO_CLEAN_SPACES);
		v->ignore_merges = (pdef->flags & LG_PRE_IGNORE_MERGES) != 0;
		v->add_bos = (pdef->flags & (LG_PRE_ADD_BOS | LG_PRE_FORCE_BOS)) != 0;
		v->add_sep = (pdef->flags & LG_PRE_ADD_SEP) != 0;
		v->escape_spaces = (pdef->flags & LG_PRE_ESCAPE_SPACES) != 0;
		v->raw_utf8 = (pdef->flags & LG_PRE_RAW_UTF8) != 0;
		v->gemma4 = (pdef->flags & LG_PRE_GEMMA4) != 0;
		if (pdef->flags & LG_PRE_NO_BOS_ID)
			v->bos = LG_TOKEN_NULL;
	}
	else
	{
		lg_error_set(err, LG_ERR_UNSUPPORTED, "unsupported tokenizer model '%.*s'",
					 (int) (model.len > 64 ? 64 : model.len), model.s);
		goto fail;
	}

	if (!read_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err))
		goto fail;

	if ((st = load_tokens(v, g, err)) != LG_OK)
		goto fail;
	if (v->type == LG_VOCAB_BPE)
	{
		if ((st = load_merges(v, g, merges_required, err)) != LG_OK)
			goto fail;
		v->pretok = lg_pretok_new(pdef, err);
		if (v->pretok == NULL)
			goto fail;
	}

	if (!read_id(g, "tokenizer.ggml.bos_token_id", &v->bos, v->n_tokens, err) ||
		!read_id(g, "tokenizer.ggml.eos_token_id", &v->eos, v->n_tokens, err) ||
		!read_id(g, "tokenizer.ggml.eot_token_id", &v->eot, v->n_tokens, err) ||
		!read_id(g, "tokenizer.ggml.eom_token_id", &v->eom, v->n_tokens, err) ||
		!read_id(g, "tokenizer.ggml.unknown_token_id", &v->unk, v->n_tokens, err) ||
		!read_id(g, "tokenizer.ggml.seperator_token_id", &v->sep, v->n_tokens, err) ||
		!read_id(g, "tokenizer.ggml.padding_token_id", &v->pad, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.mask_token_id", &v->mask, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.fim_pre_token_id", &v->fim_pre, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.fim_suf_token_id", &v->fim_suf, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.fim_mid_token_id", &v->fim_mid, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.fim_pad_token_id", &v->fim_pad, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.fim_rep_token_id", &v->fim_rep, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.fim_sep_token_id", &v->fim_sep, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.prefix_token_id", &v->fim_pre, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.suffix_token_id", &v->fim_suf, v->n_tokens, err) ||
		!read_id_lenient(g, "tokenizer.ggml.middle_token_id", &v->fim_mid, v->n_tokens, err))
		goto fail;

	/* BERT files name the [CLS] token instead of a BOS token */
	if (v->type == LG_VOCAB_WPM && lg_gguf_find_key(g, "tokenizer.ggml.bos_token_id") < 0 &&
		!read_id(g, "tokenizer.ggml.cls_token_id", &v->bos, v->n_tokens, err))
		goto fail;

	if (!read_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err) ||
		!read_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err) ||
		!read_bool(g, "tokenizer.ggml.add_sep_token", &v->add_sep, err))
		goto fail;
	if (pdef != NULL && (pdef->flags & LG_PRE_FORCE_BOS))
		v->add_bos = true;
	if (v->add_bos && v->bos == LG_TOKEN_NULL)
	{
		lg_error_set(err, LG_ERR_FORMAT,
					 "tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
		goto fail;
	}
	if (v->add_eos && v->eos == LG_TOKEN_NULL)
	{
		lg_error_set(err, LG_ERR_FORMAT,
					 "tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");
		goto fail;
	}
	if (v->add_sep && v->sep == LG_TOKEN_NULL)
	{
		lg_error_set(err, LG_ERR_FORMAT,
					 "tokenizer.ggml.add_sep_token is true, but tokenizer.ggml.seperator_token_id is not set");
		goto fail;
	}

	if (!read_bool(g, "tokenizer.ggml.normalizer.lowercase", &v->lowercase, err))
		goto fail;
	v->strip_accents = v->lowercase;
	if (!read_bool(g, "tokenizer.ggml.normalizer.strip_accents", &v->strip_accents, err))
		goto fail;

	if (setup_special(v, err) != LG_OK ||
		build_special_cache(v, err) != LG_OK ||
		build_special_trie(v, err) != LG_OK ||
		build_piece_cache(v, err) != LG_OK)
		goto fail;
	set_model_attrs(v, g);
	return v;

fail:
	lg_vocab_free(v);
	return NULL;
}

/* Free everything the vocabulary owns. */
void
lg_vocab_free(lg_vocab *v)
{
	if (v == NULL)
		return;
	lg_pretok_free(v->pretok);
	free(v->tok);
	free(v->text);
	free(v->pieces);
	free(v->slots);
	free(v->merge_keys);
	free(v->merge_ranks);
	free(v->eog);
	free(v->special);
	free(v->trie_child);
	free(v->trie_next);
	free(v->trie_special);
	free(v->trie_byte);
	free(v);
}

/* ---- accessors ---- */

/* Which tokenizer family the vocabulary uses. */
lg_vocab_type
lg_vocab_get_type(const lg_vocab *v)
{
	return v->type;
}

/* "spm", "wpm" or "bpe (<pre-tokenizer>)", for messages. */
const char *
lg_vocab_type_name(const lg_vocab *v)
{
	return v->type_name;
}

/* Number of tokens. */
int32_t
lg_vocab_n_tokens(const lg_vocab *v)
{
	return v->n_tokens;
}

/* Beginning-of-sequence token, or LG_TOKEN_NULL. */
lg_token
lg_vocab_bos(const lg_vocab *v)
{
	return v->bos;
}

/* End-of-sequence token, or LG_TOKEN_NULL. */
lg_token
lg_vocab_eos(const lg_vocab *v)
{
	return v->eos;
}

/* End-of-turn token (from metadata or found by name), or LG_TOKEN_NULL. */
lg_token
lg_vocab_eot(const lg_vocab *v)
{
	return v->eot;
}

/* Unknown-text token, or LG_TOKEN_NULL. */
lg_token
lg_vocab_unk(const lg_vocab *v)
{
	return v->unk;
}

/* Separator token (BERT's [SEP]), or LG_TOKEN_NULL. */
lg_token
lg_vocab_sep(const lg_vocab *v)
{
	return v->sep;
}

/* Padding token, or LG_TOKEN_NULL. */
lg_token
lg_vocab_pad(const lg_vocab *v)
{
	return v->pad;
}

/* Does tokenizing with add_special start with BOS? */
bool
lg_vocab_add_bos(const lg_vocab *v)
{
	return v->add_bos;
}

/* Does tokenizing with add_special end with EOS? */
bool
lg_vocab_add_eos(const lg_vocab *v)
{
	return v->add_eos;
}

/* WPM: does tokenizing with add_special end with [SEP]? */
bool
lg_vocab_add_sep(const lg_vocab *v)
{
	return v->add_sep;
}

/* End of generation: EOS, EOT, EOM and the tokens named like them. */
bool
lg_vocab_is_eog(const lg_vocab *v, lg_token t)
{
	return t >= 0 && t < v->n_tokens && v->eog[t];
}

/* Is t a control token (rendered only on request)? */
bool
lg_vocab_is_control(const lg_vocab *v, lg_token t)
{
	return t >= 0 && t < v->n_tokens && (v->tok[t].attr & LG_ATTR_CONTROL);
}

/* Stored text of a token; NULL for an id outside the vocabulary. */
const char *
lg_vocab_token_text(const lg_vocab *v, lg_token t, size_t *len)
{
	if (t < 0 || t >= v->n_tokens)
	{
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = v->tok[t].len;
	return v->text + v->tok[t].off;
}

/* Id of an exact token text, or LG_TOKEN_NULL. */
lg_token
lg_vocab_find_token(const lg_vocab *v, const char *text, size_t len)
{
	return lg_vocab_lookup(v, text, len);
}

/* ---- tokenize ---- */

typedef struct fragment
{
	lg_token	token;			/* LG_TOKEN_NULL for raw text */
	size_t		off;
	size_t		len;
} fragment;

typedef struct fragvec
{
	fragment   *v;
	size_t		n;
	size_t		cap;
} fragvec;

/* Append a fragment; false when out of memory. */
static bool
frag_push(fragvec *fv, lg_token token, size_t off, size_t len)
{
	if (fv->n == fv->cap)
	{
		size_t		cap = fv->cap ? fv->cap * 2 : 16;
		fragment   *nv = realloc(fv->v, cap * sizeof(fragment));

		if (nv == NULL)
			return false;
		fv->v = nv;
		fv->cap = cap;
	}
	fv->v[fv->n++] = (fragment) {token, off, len};
	return true;
}

/* C-locale isspace, as the strip rules use. */
static inline bool
is_c_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * Split the special tokens out of the raw fragments, longest first
 * (tokenizer_st_partition).  Without parse_special, control and unknown
 * tokens stay text; user-defined ones are always split out.
 */
static bool
partition(const lg_vocab *v, const char *text, size_t len, fragvec *frags, bool parse_special)
{
	fragvec		next = {NULL, 0, 0};
	uint8_t    *present = NULL;

	/* with many special tokens, one trie pass beats a search per token */
	if (v->n_special > 4)
	{
		present = calloc((size_t) v->n_special, 1);
		if (present == NULL)
			return false;
		special_present(v, text, len, present);
	}

	for (int32_t k = 0; k < v->n_special; k++)
	{
		lg_token	st = v->special[k];
		const lg_token_data *td = &v->tok[st];
		const char *stext = v->text + td->off;
		bool		changed = false;

		if (!parse_special && (td->attr & (LG_ATTR_CONTROL | LG_ATTR_UNKNOWN)))
			continue;
		if (present != NULL && !present[k])
			continue;

		next.n = 0;
		for (size_t f = 0; f < frags->n; f++)
		{
			fragment	fr = frags->v[f];
			size_t		pos = fr.off;
			size_t		end = fr.off + fr.len;
			bool		found = false;

			if (fr.token != LG_TOKEN_NULL || fr.len < td->len)
			{
				if (!frag_push(&next, fr.token, fr.off, fr.len))
					goto oom;
				continue;
			}
			while (pos < end)
			{
				const char *m = memmem(text + pos, end - pos, stext, td->len);
				size_t		mpos;

				if (m == NULL)
					break;
				found = true;
				mpos = (size_t) (m - text);
				if (mpos > pos)
				{
					size_t		llen = mpos - pos;

					if (td->attr & LG_ATTR_LSTRIP)
						while (llen > 0 && is_c_space(text[pos + llen - 1]))
							llen--;
					if (llen > 0 && !frag_push(&next, LG_TOKEN_NULL, pos, llen))
						goto oom;
				}
				if (!frag_push(&next, st, 0, 0))
					goto oom;
				pos = mpos + td->len;
				if (pos < end && (td->attr & LG_ATTR_RSTRIP))
					while (pos < end && is_c_space(text[pos]))
						pos++;
			}
			if (!found)
			{
				if (!frag_push(&next, LG_TOKEN_NULL, fr.off, fr.len))
					goto oom;
				continue;
			}
			changed = true;
			if (pos < end && !frag_push(&next, LG_TOKEN_NULL, pos, end - pos))
				goto oom;
		}
		if (changed)
		{
			fragvec		tmp = *frags;

			*frags = next;
			next = tmp;
		}
	}
	free(next.v);
	free(present);
	return true;

oom:
	free(next.v);
	free(present);
	return false;
}

/* Tokenize a text fragment with the vocabulary's own tokenizer. */
static lg_status
tokenize_fragment(const lg_vocab *v, const char *text, size_t len, bool prefix_space,
				  lg_tokvec *out, lg_error *err)
{
	char	   *buf;
	size_t		n = 0;
	lg_status	st;

	if (v->type == LG_VOCAB_BPE)
		return lg_bpe_tokenize(v, text, len, out, err);
	if (v->type == LG_VOCAB_WPM)
		return lg_wpm_tokenize(v, text, len, out, err);

	/* SPM: optional leading space, then every space becomes U+2581 */
	if (len > (SIZE_MAX - LG_SPM_SPACE_LEN) / LG_SPM_SPACE_LEN)
		return lg_error_set(err, LG_ERR_RANGE, "text is too long");
	buf = malloc((len + 1) * LG_SPM_SPACE_LEN);
	if (buf == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");
	if (prefix_space)
	{
		memcpy(buf, LG_SPM_SPACE, LG_SPM_SPACE_LEN);
		n = LG_SPM_SPACE_LEN;
	}
	for (size_t i = 0; i < len; i++)
	{
		if (text[i] == ' ')
		{
			memcpy(buf + n, LG_SPM_SPACE, LG_SPM_SPACE_LEN);
			n += LG_SPM_SPACE_LEN;
		}
		else
			buf[n++] = text[i];
	}
	st = lg_spm_tokenize(v, buf, n, out, err);
	free(buf);
	return st;
}

/* Tokenize len bytes of text (llama_vocab::impl::tokenize). */
int64_t
lg_tokenize(const lg_vocab *v, const char *text, size_t len, bool add_special,
			bool parse_special, lg_token *tokens, int64_t max_tokens, lg_error *err)
{
	fragvec		frags = {NULL, 0, 0};
	lg_tokvec	out = {NULL, 0, 0};
	bool		prev_special = true;	/* SPM: a space before the first text */
	int64_t		result = -1;

	if (v == NULL || (text == NULL && len > 0) || (tokens == NULL && max_tokens > 0))
	{
		lg_error_set(err, LG_ERR_ARG, "invalid arguments to lg_tokenize");
		return -1;
	}
	if (len > 0)
	{
		if (!frag_push(&frags, LG_TOKEN_NULL, 0, len) || !partition(v, text, len, &frags, parse_special))
			goto oom;
	}

	if (add_special && v->add_bos && v->bos != LG_TOKEN_NULL && !lg_tokvec_push(&out, v->bos))
		goto oom;
	for (size_t f = 0; f < frags.n; f++)
	{
		const fragment *fr = &frags.v[f];

		if (fr->token != LG_TOKEN_NULL)
		{
			if (!lg_tokvec_push(&out, fr->token))
				goto oom;
			prev_special = true;
			continue;
		}
		if (tokenize_fragment(v, text + fr->off, fr->len, v->add_space_prefix && prev_special,
							  &out, err) != LG_OK)
			goto done;
		prev_special = false;
	}
	if (add_special)
	{
		if (v->type == LG_VOCAB_WPM)
		{
			if (v->add_sep && v->sep != LG_TOKEN_NULL && !lg_tokvec_push(&out, v->sep))
				goto oom;
		}
		else if (v->add_eos && v->eos != LG_TOKEN_NULL && !lg_tokvec_push(&out, v->eos))
			goto oom;
	}

	if (out.n > (size_t) INT64_MAX)
	{
		lg_error_set(err, LG_ERR_RANGE, "too many tokens");
		goto done;
	}
	if (max_tokens > 0 && out.n > 0)
		memcpy(tokens, out.v, (size_t) ((int64_t) out.n < max_tokens ? (int64_t) out.n : max_tokens) *
			   sizeof(lg_token));
	result = (int64_t) out.n;
	goto done;

oom:
	lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");
done:
	free(frags.v);
	free(out.v);
	return result;
}

/* ---- detokenize ---- */

/* Token piece (llama_token_to_piece without lstrip). */
int32_t
lg_token_to_piece(const lg_vocab *v, lg_token t, char *buf, int32_t bufsize, bool special)
{
	const lg_token_data *td;

	if (v == NULL || t < 0 || t >= v->n_tokens)
		return -1;
	td = &v->tok[t];
	if (!special && (td->attr & (LG_ATTR_UNKNOWN | LG_ATTR_CONTROL)))
		return 0;
	if (buf != NULL && bufsize > 0)
		memcpy(buf, v->pieces + td->piece_off,
			   td->piece_len < (uint32_t) bufsize ? td->piece_len : (uint32_t) bufsize);
	return (int32_t) td->piece_len;
}

/* clean_up_tokenization_spaces, the three passes of llama_vocab::detokenize. */
static size_t
clean_spaces(char *text, size_t total)
{
	size_t		total1,
				total2,
				total3;

	/* " ?", " !", " .", " ," lose the space */
	total1 = total;
	total = total ? 1 : 0;
	for (size_t i = 1; i < total1; i++)
	{
		const char	x = text[i];

		if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
			total--;
		text[total++] = x;
	}

	/* " ' " becomes "'" */
	total2 = total;
	total = total ? 1 : 0;
	for (size_t i = 1; i < total2; i++)
	{
		const char	x = text[i];

		if (x == '\'' && i + 1 < total2 && text[i - 1] == ' ' && text[i + 1] == ' ')
		{
			total--;
			text[++i] = '\0';
		}
		text[total++] = x;
	}

	/* " 's", " 'm", " 're", " 've" lose the space */
	total3 = total;
	total = total ? 1 : 0;
	for (size_t i = 1; i < total3; i++)
	{
		const char	x = text[i];

		if (text[i - 1] == ' ' && x == '\'' && i + 1 < total3)
		{
			const char	x1 = text[i + 1];

			if (x1 == 's' || x1 == 'm')
				total--;
			else if (x1 != 't' && x1 != 'd' && i + 2 < total3)
			{
				const char	x2 = text[i + 2];

				if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e'))
					total--;
			}
		}
		text[total++] = x;
	}
	return total;
}

/* Detokenize n ids (llama_vocab::impl::detokenize). */
int64_t
lg_detokenize(const lg_vocab *v, const lg_token *tokens, int64_t n, char *buf, int64_t bufsize,
			  bool remove_special, bool unparse_special)
{
	bytebuf		bb = {NULL, 0, 0, false};
	bool		remove_space;
	size_t		total;

	if (v == NULL || n < 0 || (tokens == NULL && n > 0))
		return -1;
	remove_space = v->add_space_prefix;
	if (remove_special && v->add_bos && n > 0 && tokens[0] == v->bos)
	{
		remove_space = false;
		n--;
		tokens++;
	}
	if (remove_special && v->add_eos && n > 0 && tokens[n - 1] == v->eos)
		n--;

	for (int64_t i = 0; i < n; i++)
	{
		lg_token	t = tokens[i];
		const lg_token_data *td;
		const char *p;
		size_t		plen;

		if (t < 0 || t >= v->n_tokens)
		{
			free(bb.b);
			return -1;
		}
		td = &v->tok[t];
		if (!unparse_special && (td->attr & (LG_ATTR_UNKNOWN | LG_ATTR_CONTROL)))
		{
			remove_space = false;
			continue;
		}
		p = v->pieces + td->piece_off;
		plen = td->piece_len;
		if (remove_space && plen > 0 && p[0] == ' ')
		{
			p++;
			plen--;
		}
		remove_space = false;
		bb_add(&bb, p, plen);
	}
	bb_add(&bb, "", 0);
	if (bb.oom)
	{
		free(bb.b);
		return -1;
	}
	total = bb.n;
	if (v->clean_spaces)
		total = clean_spaces(bb.b, total);
	if (buf != NULL && bufsize > 0)
		memcpy(buf, bb.b, (size_t) ((int64_t) total < bufsize ? (int64_t) total : bufsize));
	free(bb.b);
	return (int64_t) total;
}
