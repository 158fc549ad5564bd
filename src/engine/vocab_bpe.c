/*
 * vocab_bpe.c — byte-level BPE tokenization ("gpt2" vocabularies).
 *
 * As llama.cpp's llm_tokenizer_bpe: the pre-tokenizer splits the text into
 * words; each word is written in GPT-2's byte-to-character encoding, cut
 * into characters, and the adjacent pair with the lowest merge rank is
 * merged until no listed merge applies.  Each resulting piece is a token;
 * a piece that is not (which the merges never produce) is spelt bytewise.
 */
#include "vocab_impl.h"

#include <stdlib.h>
#include <string.h>

#include "unicode.h"

typedef struct bpe_symbol
{
	int			prev;
	int			next;
	size_t		off;			/* in the word */
	size_t		n;				/* bytes; 0 once merged away */
} bpe_symbol;

typedef struct bpe_bigram
{
	int32_t		rank;
	int			left;
	int			right;
	uint32_t	size;			/* bytes of the pair when it was queued */
} bpe_bigram;

typedef struct bpe_state
{
	const lg_vocab *v;
	const char *word;
	bpe_symbol *sym;
	size_t		sym_cap;
	bpe_bigram *heap;
	size_t		heap_n;
	size_t		heap_cap;
	bool		oom;
} bpe_state;

/* Priority: lowest rank first, then the leftmost pair (llm_bigram_bpe). */
static inline bool
bigram_before(const bpe_bigram *a, const bpe_bigram *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

/* Push onto the binary heap. */
static void
heap_push(bpe_state *st, bpe_bigram bg)
{
	size_t		i;

	if (st->heap_n == st->heap_cap)
	{
		size_t		cap = st->heap_cap ? st->heap_cap * 2 : 64;
		bpe_bigram *h = realloc(st->heap, cap * sizeof(bpe_bigram));

		if (h == NULL)
		{
			st->oom = true;
			return;
		}
		st->heap = h;
		st->heap_cap = cap;
	}
	i = st->heap_n++;
	while (i > 0)
	{
		size_t		parent = (i - 1) / 2;

		if (!bigram_before(&bg, &st->heap[parent]))
			break;
		st->heap[i] = st->heap[parent];
		i = parent;
	}
	st->heap[i] = bg;
}

/* Pop the best bigram (the heap is not empty). */
static bpe_bigram
heap_pop(bpe_state *st)
{
	bpe_bigram	top = st->heap[0];
	bpe_bigram	last = st->heap[--st->heap_n];
	size_t		i = 0;

	for (;;)
	{
		size_t		c = 2 * i + 1;

		if (c >= st->heap_n)
			break;
		if (c + 1 < st->heap_n && bigram_before(&st->heap[c + 1], &st->heap[c]))
			c++;
		if (!bigram_before(&st->heap[c], &last))
			break;
		st->heap[i] = st->heap[c];
		i = c;
	}
	if (st->heap_n > 0)
		st->heap[i] = last;
	return top;
}

/*
 * Queue (left, right) if a merge joins them.  Merges name vocabulary tokens
 * only (lg_vocab_load checks), so looking the halves up by id is the same as
 * llama.cpp's lookup by text.
 */
static void
add_bigram(bpe_state *st, int left, int right)
{
	const bpe_symbol *l,
			   *r;
	lg_token	idl,
				idr;
	int32_t		rank;
	bpe_bigram	bg;

	if (left == -1 || right == -1)
		return;
	l = &st->sym[left];
	r = &st->sym[right];
	idl = lg_vocab_lookup(st->v, st->word + l->off, l->n);
	if (idl == LG_TOKEN_NULL)
		return;
	idr = lg_vocab_lookup(st->v, st->word + r->off, r->n);
	if (idr == LG_TOKEN_NULL)
		return;
	rank = lg_vocab_merge_rank(st->v, idl, idr);
	if (rank < 0)
		return;
	bg.rank = rank;
	bg.left = left;
	bg.right = right;
	bg.size = (uint32_t) (l->n + r->n);
	heap_push(st, bg);
}

/* Is the word made of newlines only (Gemma 4 keeps such runs whole)? */
static bool
all_newlines(const char *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (w[i] != '\n')
			return false;
	return n > 0;
}

/* Merge one word and append its tokens. */
static bool
bpe_word(bpe_state *st, const char *word, size_t wlen, lg_tokvec *out)
{
	const lg_vocab *v = st->v;
	size_t		n_sym = 0;
	size_t		off = 0;

	st->word = word;
	st->heap_n = 0;
	if (wlen > st->sym_cap)
	{
		bpe_symbol *s = realloc(st->sym, wlen * sizeof(bpe_symbol));

		if (s == NULL)
			return false;
		st->sym = s;
		st->sym_cap = wlen;
	}

	if ((v->ignore_merges || (v->gemma4 && all_newlines(word, wlen))) &&
		lg_vocab_lookup(v, word, wlen) != LG_TOKEN_NULL)
	{
		st->sym[0] = (bpe_symbol) {-1, -1, 0, wlen};
		n_sym = 1;
		off = wlen;
	}
	while (off < wlen)
	{
		size_t		n = lg_utf8_len((uint8_t) word[off]);

		if (n > wlen - off)
			n = wlen - off;
		st->sym[n_sym].off = off;
		st->sym[n_sym].n = n;
		off += n;
		st->sym[n_sym].prev = (int) n_sym - 1;
		st->sym[n_sym].next = off == wlen ? -1 : (int) n_sym + 1;
		n_sym++;
	}
	for (size_t i = 1; i < n_sym; i++)
		add_bigram(st, (int) i - 1, (int) i);

	while (st->heap_n > 0 && !st->oom)
	{
		bpe_bigram	bg = heap_pop(st);
		bpe_symbol *l = &st->sym[bg.left];
		bpe_symbol *r = &st->sym[bg.right];

		/* outdated: a half has been merged since (same test as comparing texts) */
		if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			st->sym[r->next].prev = bg.left;
		add_bigram(st, l->prev, bg.left);
		add_bigram(st, bg.left, l->next);
	}
	if (st->oom)
		return false;

	for (int i = 0; n_sym > 0 && i != -1; i = st->sym[i].next)
	{
		const bpe_symbol *s = &st->sym[i];
		lg_token	id;

		if (s->n == 0)
			continue;
		id = lg_vocab_lookup(v, word + s->off, s->n);
		if (id != LG_TOKEN_NULL)
		{
			if (!lg_tokvec_push(out, id))
				return false;
			continue;
		}
		/* bytewise, as llama.cpp: one-byte tokens, or <0xXX> without byte encoding */
		for (size_t j = 0; j < s->n; j++)
		{
			uint8_t		b = (uint8_t) word[s->off + j];

			if (v->raw_utf8)
			{
				static const char hex[] = "0123456789ABCDEF";
				char		name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};

				id = lg_vocab_lookup(v, name, 6);
			}
			else
				id = lg_vocab_lookup(v, (const char *) &b, 1);
			if (id != LG_TOKEN_NULL && !lg_tokvec_push(out, id))
				return false;
		}
	}
	return true;
}

/* Tokenize one text fragment. */
lg_status
lg_bpe_tokenize(const lg_vocab *v, const char *text, size_t len, lg_tokvec *out,
				lg_error *err)
{
	char	   *escaped = NULL;
	uint32_t   *cpts = NULL;
	size_t		n_cpts = 0;
	lg_pretok_words words = {NULL, 0, 0};
	bpe_state	st;
	char	   *word = NULL;
	size_t		word_cap = 0;
	size_t		start = 0;
	lg_status	rc;

	memset(&st, 0, sizeof(st));
	st.v = v;

	if (v->escape_spaces)
	{
		size_t		n = 0;

		if (len > (SIZE_MAX - 1) / LG_SPM_SPACE_LEN)
			return lg_error_set(err, LG_ERR_RANGE, "text is too long");
		escaped = malloc(len * LG_SPM_SPACE_LEN + 1);
		if (escaped == NULL)
			return lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");
		for (size_t i = 0; i < len; i++)
		{
			if (text[i] == ' ')
			{
				memcpy(escaped + n, LG_SPM_SPACE, LG_SPM_SPACE_LEN);
				n += LG_SPM_SPACE_LEN;
			}
			else
				escaped[n++] = text[i];
		}
		text = escaped;
		len = n;
	}

	cpts = lg_utf8_to_cpts(text, len, &n_cpts);
	if (cpts == NULL)
	{
		rc = lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");
		goto done;
	}
	rc = lg_pretok_split(v->pretok, cpts, n_cpts, &words, err);
	if (rc != LG_OK)
		goto done;

	for (size_t w = 0; w < words.n; w++)
	{
		size_t		cnt = words.len[w];
		size_t		wlen = 0;

		if (cnt > (SIZE_MAX / 8) - 1)
		{
			rc = lg_error_set(err, LG_ERR_RANGE, "word too long");
			goto done;
		}
		if (cnt * 8 > word_cap)
		{
			char	   *nw = realloc(word, cnt * 8);

			if (nw == NULL)
				goto oom;
			word = nw;
			word_cap = cnt * 8;
		}
		for (size_t i = start; i < start + cnt; i++)
		{
			char		u[4];
			size_t		ul = lg_utf8_encode(cpts[i], u);

			if (v->raw_utf8)
			{
				memcpy(word + wlen, u, ul);
				wlen += ul;
				continue;
			}
			for (size_t k = 0; k < ul; k++)
				wlen += lg_utf8_encode(lg_unicode_byte_to_cpt((uint8_t) u[k]), word + wlen);
		}
		start += cnt;
		if (wlen > (size_t) INT32_MAX)
		{
			rc = lg_error_set(err, LG_ERR_RANGE, "word of %zu bytes is too long", wlen);
			goto done;
		}
		if (!bpe_word(&st, word, wlen, out))
			goto oom;
	}
	rc = LG_OK;
	goto done;

oom:
	rc = lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");
done:
	free(word);
	free(st.sym);
	free(st.heap);
	lg_pretok_words_free(&words);
	free(cpts);
	free(escaped);
	return rc;
}
