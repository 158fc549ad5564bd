/*
 * vocab_wpm.c — WordPiece tokenization ("bert" vocabularies).
 *
 * As llama.cpp's llm_tokenizer_wpm: the text is normalised (accents removed
 * through llama.cpp's first-code-point NFD, lower-cased), split on
 * whitespace, with punctuation, ASCII symbols and CJK ideographs as words of
 * their own; each word, prefixed with U+2581 (the converter writes word-
 * initial pieces that way and continuation pieces bare), is covered greedily
 * by the longest matching tokens, or becomes [UNK] as a whole.
 */
#include "vocab_impl.h"

#include <stdlib.h>
#include <string.h>

#include "unicode.h"

/* The CJK ranges BERT's tokenizer isolates (with HF's 0x2B920 quirk). */
static bool
is_chinese_char(uint32_t cpt)
{
	return (cpt >= 0x04E00 && cpt <= 0x09FFF) ||
		(cpt >= 0x03400 && cpt <= 0x04DBF) ||
		(cpt >= 0x20000 && cpt <= 0x2A6DF) ||
		(cpt >= 0x2A700 && cpt <= 0x2B73F) ||
		(cpt >= 0x2B740 && cpt <= 0x2B81F) ||
		(cpt >= 0x2B920 && cpt <= 0x2CEAF) ||
		(cpt >= 0x0F900 && cpt <= 0x0FAFF) ||
		(cpt >= 0x2F800 && cpt <= 0x2FA1F);
}

/* Cover "▁word" greedily with the longest tokens; all or nothing. */
static bool
wpm_word(const lg_vocab *v, const char *w, size_t n, lg_tokvec *out)
{
	size_t		before = out->n;

	for (size_t i = 0; i < n; i++)
	{
		bool		match = false;
		size_t		j = n;

		if ((size_t) v->max_token_len + 1 < n - i)
			j = i + (size_t) v->max_token_len + 1;
		for (; j > i; j--)
		{
			lg_token	id = lg_vocab_lookup(v, w + i, j - i);

			if (id != LG_TOKEN_NULL)
			{
				if (!lg_tokvec_push(out, id))
					return false;
				match = true;
				i = j - 1;
				break;
			}
		}
		if (!match)
		{
			out->n = before;
			break;
		}
	}
	if (out->n == before && v->unk != LG_TOKEN_NULL)
		return lg_tokvec_push(out, v->unk);
	return true;
}

/* Word buffer: "▁" followed by the word's bytes. */
typedef struct wbuf
{
	char	   *b;
	size_t		n;
	size_t		cap;
} wbuf;

/* Append bytes; false when out of memory. */
static bool
wbuf_add(wbuf *w, const char *s, size_t n)
{
	if (w->n + n > w->cap)
	{
		size_t		cap = (w->n + n) * 2 + 16;
		char	   *b = realloc(w->b, cap);

		if (b == NULL)
			return false;
		w->b = b;
		w->cap = cap;
	}
	memcpy(w->b + w->n, s, n);
	w->n += n;
	return true;
}

/* Tokenize the word collected so far, if any, and start a new one. */
static bool
flush_word(const lg_vocab *v, wbuf *w, lg_tokvec *out)
{
	bool		ok = true;

	if (w->n > LG_SPM_SPACE_LEN)
		ok = wpm_word(v, w->b, w->n, out);
	w->n = LG_SPM_SPACE_LEN;
	return ok;
}

/* Tokenize one text fragment. */
lg_status
lg_wpm_tokenize(const lg_vocab *v, const char *text, size_t len, lg_tokvec *out,
				lg_error *err)
{
	wbuf		w = {NULL, 0, 0};
	size_t		off = 0;
	bool		ok;

	ok = wbuf_add(&w, LG_SPM_SPACE, LG_SPM_SPACE_LEN);
	while (ok && off < len)
	{
		uint32_t	cpt = lg_utf8_decode(text, len, &off);
		uint16_t	flags;
		char		u[4];
		size_t		ul;

		if (v->strip_accents)
			cpt = lg_unicode_nfd_first(cpt);
		flags = lg_unicode_flags(cpt);
		if (flags & LG_UFLAG_WHITESPACE)
		{
			ok = flush_word(v, &w, out);
			continue;
		}
		if (cpt == 0 || cpt == LG_UNICODE_REPLACEMENT || (flags & LG_UFLAG_CONTROL))
			continue;
		if (v->strip_accents && (flags & LG_UFLAG_MARK))
			continue;
		ul = lg_utf8_encode(v->lowercase ? lg_unicode_tolower(cpt) : cpt, u);
		if ((flags & LG_UFLAG_PUNCTUATION) || (cpt < 0x7F && (flags & LG_UFLAG_SYMBOL)) ||
			is_chinese_char(cpt))
		{
			ok = flush_word(v, &w, out) && wbuf_add(&w, u, ul) && flush_word(v, &w, out);
			continue;
		}
		ok = wbuf_add(&w, u, ul);
	}
	if (ok)
		ok = flush_word(v, &w, out);
	free(w.b);
	if (!ok)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");
	return LG_OK;
}
