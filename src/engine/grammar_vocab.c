/*
 * grammar_vocab.c — a model's tokens as the grammar sees them: each token's
 * output bytes (lg_token_to_piece with special=false) and a byte trie over
 * them, so that a mask walks each shared prefix once.
 *
 * Tokens are sorted by their bytes; a trie node covers the contiguous run of
 * sorted tokens that start with its prefix (order[tok_lo .. tok_hi)), those
 * equal to the prefix first.  Children of a node are consecutive nodes, in
 * byte order.  Tokens with no bytes (control tokens) are not in the trie.
 */
#include "grammar_impl.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t next_vocab_id = 1;

/* The vocabulary being sorted (qsort has no context argument). */
static __thread const lg_grammar_vocab *sort_gv;

/* Order of tokens by their bytes (a prefix sorts first), then by id. */
static int
cmp_piece(const void *a, const void *b)
{
	int32_t		x = *(const int32_t *) a,
				y = *(const int32_t *) b;
	const lg_grammar_vocab *gv = sort_gv;
	uint32_t	lx = gv->piece_off[x + 1] - gv->piece_off[x];
	uint32_t	ly = gv->piece_off[y + 1] - gv->piece_off[y];
	int			c = memcmp(gv->pieces + gv->piece_off[x], gv->pieces + gv->piece_off[y], lx < ly ? lx : ly);

	if (c != 0)
		return c;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Byte d of token t (d below its length). */
static inline uint8_t
piece_byte(const lg_grammar_vocab *gv, int32_t t, uint32_t d)
{
	return (uint8_t) gv->pieces[gv->piece_off[t] + d];
}

/* Bytes in token t. */
static inline uint32_t
piece_len(const lg_grammar_vocab *gv, int32_t t)
{
	return gv->piece_off[t + 1] - gv->piece_off[t];
}

/*
 * Fill node `node` (prefix of length depth, tokens order[lo..hi)) and, below
 * it, its subtree.  Children are appended to gv->nodes, which has room for
 * one node per byte of all pieces plus the root.
 */
static void
build_node(lg_grammar_vocab *gv, uint32_t node, uint32_t depth, uint32_t lo, uint32_t hi)
{
	uint32_t	own = lo;
	uint32_t	n_children = 0;
	uint32_t	first;

	while (own < hi && piece_len(gv, gv->order[own]) == depth)
		own++;
	gv->nodes[node].tok_lo = lo;
	gv->nodes[node].tok_own = own - lo;
	gv->nodes[node].tok_hi = hi;
	for (uint32_t i = own; i < hi;)
	{
		uint8_t		b = piece_byte(gv, gv->order[i], depth);

		while (i < hi && piece_byte(gv, gv->order[i], depth) == b)
			i++;
		n_children++;
	}
	first = gv->n_nodes;
	gv->nodes[node].first_child = first;
	gv->nodes[node].n_children = (uint16_t) n_children;
	gv->n_nodes += n_children;
	for (uint32_t i = own, c = 0; i < hi; c++)
	{
		uint8_t		b = piece_byte(gv, gv->order[i], depth);
		uint32_t	s = i;

		while (i < hi && piece_byte(gv, gv->order[i], depth) == b)
			i++;
		gv->nodes[first + c].byte = b;
		build_node(gv, first + c, depth + 1, s, i);
	}
}

lg_grammar_vocab *
lg_grammar_vocab_new(const lg_vocab *v, lg_error *err)
{
	lg_grammar_vocab *gv;
	int32_t		n = lg_vocab_n_tokens(v);
	size_t		cap = 1 << 16,
				len = 0;
	char		buf[512];
	uint32_t	n_sorted = 0;

	if (n <= 0)
	{
		lg_error_set(err, LG_ERR_ARG, "vocabulary has no tokens");
		return NULL;
	}
	gv = calloc(1, sizeof(*gv));
	if (gv == NULL)
		goto nomem;
	gv->id = atomic_fetch_add(&next_vocab_id, 1);
	gv->n_tokens = n;
	gv->piece_off = malloc(((size_t) n + 1) * sizeof(uint32_t));
	gv->is_eog = calloc((size_t) n, sizeof(bool));
	gv->pieces = malloc(cap);
	gv->order = malloc((size_t) n * sizeof(int32_t));
	if (gv->piece_off == NULL || gv->is_eog == NULL || gv->pieces == NULL || gv->order == NULL)
		goto nomem;
	for (int32_t t = 0; t < n; t++)
	{
		int32_t		k = lg_token_to_piece(v, t, buf, (int32_t) sizeof(buf), false);
		char	   *src = buf;
		char	   *big = NULL;

		if (k > (int32_t) sizeof(buf))
		{
			big = malloc((size_t) k);
			if (big == NULL)
				goto nomem;
			k = lg_token_to_piece(v, t, big, k, false);
			src = big;
		}
		if (k < 0)
			k = 0;
		if (len + (size_t) k > UINT32_MAX)
		{
			free(big);
			lg_grammar_vocab_free(gv);
			lg_error_set(err, LG_ERR_RANGE, "vocabulary pieces exceed 4 GiB");
			return NULL;
		}
		if (len + (size_t) k > cap)
		{
			char	   *nb;

			while (len + (size_t) k > cap)
				cap *= 2;
			nb = realloc(gv->pieces, cap);
			if (nb == NULL)
			{
				free(big);
				goto nomem;
			}
			gv->pieces = nb;
		}
		gv->piece_off[t] = (uint32_t) len;
		memcpy(gv->pieces + len, src, (size_t) k);
		len += (size_t) k;
		free(big);
		if ((uint32_t) k > gv->max_len)
			gv->max_len = (uint32_t) k;
		gv->is_eog[t] = lg_vocab_is_eog(v, t);
		if (k > 0)
			gv->order[n_sorted++] = t;
	}
	gv->piece_off[n] = (uint32_t) len;
	sort_gv = gv;
	qsort(gv->order, n_sorted, sizeof(int32_t), cmp_piece);
	sort_gv = NULL;
	gv->nodes = calloc(len + 1, sizeof(lg_gtrie_node));
	if (gv->nodes == NULL)
		goto nomem;
	gv->n_nodes = 1;
	build_node(gv, 0, 0, 0, n_sorted);
	return gv;
nomem:
	lg_grammar_vocab_free(gv);
	lg_error_set(err, LG_ERR_NOMEM, "out of memory building the grammar vocabulary");
	return NULL;
}

void
lg_grammar_vocab_free(lg_grammar_vocab *gv)
{
	if (gv == NULL)
		return;
	free(gv->piece_off);
	free(gv->pieces);
	free(gv->is_eog);
	free(gv->nodes);
	free(gv->order);
	free(gv);
}

int32_t
lg_grammar_vocab_n_tokens(const lg_grammar_vocab *gv)
{
	return gv->n_tokens;
}
