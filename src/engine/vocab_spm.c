/*
 * vocab_spm.c — SentencePiece-style tokenization ("llama" vocabularies).
 *
 * As llama.cpp's llm_tokenizer_spm: the text is cut into UTF-8 characters,
 * then the adjacent pair whose concatenation is the highest-scoring token is
 * merged, repeatedly, until no pair forms a token.  Whatever is left that is
 * not a token is spelt out with byte tokens (<0xXX>).
 */
#include "vocab_impl.h"

#include <stdlib.h>

#include "unicode.h"

typedef struct spm_symbol
{
	int			prev;
	int			next;
	size_t		off;
	size_t		n;				/* bytes; 0 once merged into the left neighbour */
} spm_symbol;

/* 16 bytes: the heap is the hot spot on long texts */
typedef struct spm_bigram
{
	float		score;
	int			left;
	int			right;
	uint32_t	size;			/* bytes of the pair when it was queued */
} spm_bigram;

typedef struct spm_state
{
	const lg_vocab *v;
	const char *text;
	spm_symbol *sym;
	spm_bigram *heap;
	size_t		heap_n;
	size_t		heap_cap;
	bool		oom;
} spm_state;

/* Priority: higher score first, then the leftmost pair (llm_bigram_spm). */
static inline bool
bigram_before(const spm_bigram *a, const spm_bigram *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* Push onto the binary heap. */
static void
heap_push(spm_state *st, spm_bigram bg)
{
	size_t		i;

	if (st->heap_n == st->heap_cap)
	{
		size_t		cap = st->heap_cap ? st->heap_cap * 2 : 64;
		spm_bigram *h = realloc(st->heap, cap * sizeof(spm_bigram));

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
static spm_bigram
heap_pop(spm_state *st)
{
	spm_bigram	top = st->heap[0];
	spm_bigram	last = st->heap[--st->heap_n];
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

/* Queue the pair (left, right) if together they spell a token. */
static void
try_add_bigram(spm_state *st, int left, int right)
{
	size_t		size;
	lg_token	id;
	spm_bigram	bg;

	if (left == -1 || right == -1)
		return;
	size = st->sym[left].n + st->sym[right].n;
	id = lg_vocab_lookup(st->v, st->text + st->sym[left].off, size);
	if (id == LG_TOKEN_NULL)
		return;
	bg.score = st->v->tok[id].score;
	bg.left = left;
	bg.right = right;
	bg.size = (uint32_t) size;
	heap_push(st, bg);
}

/* Emit a final symbol: its token, else its bytes as byte tokens. */
static bool
resegment(spm_state *st, const spm_symbol *s, lg_tokvec *out)
{
	lg_token	id = lg_vocab_lookup(st->v, st->text + s->off, s->n);

	if (id != LG_TOKEN_NULL)
		return lg_tokvec_push(out, id);

	/*
	 * llama.cpp also consults the merges it recorded here, but a symbol that
	 * is not a token can only be a single character, which no merge made.
	 */
	for (size_t j = 0; j < s->n; j++)
	{
		lg_token	b = lg_vocab_byte_token(st->v, (uint8_t) st->text[s->off + j]);

		/* llama.cpp throws when there is no byte token; fall back to <unk> */
		if (b == LG_TOKEN_NULL)
			b = st->v->unk;
		if (b != LG_TOKEN_NULL && !lg_tokvec_push(out, b))
			return false;
	}
	return true;
}

/* Tokenize one (already space-escaped) fragment. */
lg_status
lg_spm_tokenize(const lg_vocab *v, const char *text, size_t len, lg_tokvec *out,
				lg_error *err)
{
	spm_state	st = {v, text, NULL, NULL, 0, 0, false};
	size_t		n_sym = 0;
	size_t		offs = 0;
	lg_status	rc = LG_OK;

	if (len == 0)
		return LG_OK;
	if (len > (size_t) INT32_MAX)
		return lg_error_set(err, LG_ERR_RANGE, "text fragment of %zu bytes is too long", len);
	st.sym = malloc(len * sizeof(spm_symbol));
	if (st.sym == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");

	while (offs < len)
	{
		size_t		n = lg_utf8_len((uint8_t) text[offs]);
		spm_symbol *s = &st.sym[n_sym];

		if (n > len - offs)
			n = len - offs;
		s->off = offs;
		s->n = n;
		offs += n;
		s->prev = (int) n_sym - 1;
		s->next = offs == len ? -1 : (int) n_sym + 1;
		n_sym++;
	}

	for (size_t i = 1; i < n_sym; i++)
		try_add_bigram(&st, (int) i - 1, (int) i);

	while (st.heap_n > 0 && !st.oom)
	{
		spm_bigram	bg = heap_pop(&st);
		spm_symbol *l = &st.sym[bg.left];
		spm_symbol *r = &st.sym[bg.right];

		/* skip pairs one of whose halves has changed since they were queued */
		if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			st.sym[r->next].prev = bg.left;
		try_add_bigram(&st, l->prev, bg.left);
		try_add_bigram(&st, bg.left, l->next);
	}

	if (st.oom)
		rc = lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");
	else
	{
		for (int i = 0; i != -1; i = st.sym[i].next)
		{
			if (!resegment(&st, &st.sym[i], out))
			{
				rc = lg_error_set(err, LG_ERR_NOMEM, "out of memory tokenizing");
				break;
			}
		}
	}
	free(st.sym);
	free(st.heap);
	return rc;
}
