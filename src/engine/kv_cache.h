/*
 * kv_cache.h — the paged KV cache: one pool of fixed-size blocks of
 * positions per model, shared by every sequence, as in vLLM.
 *
 * A block holds block_size positions of K and V for every layer.  A
 * sequence (lg_kv_seq) owns a block table: its position p lives in block
 * blocks[p / block_size], row p % block_size.  Blocks are reference counted.
 *
 * The prefix cache: when a block is full, it is keyed by a hash of its
 * tokens chained with the hash of the block before it, so the key names
 * the whole prefix up to the block's end.  A new sequence whose prompt
 * starts with the same tokens attaches those blocks instead of computing
 * them.  A full block no sequence uses is kept (not freed) on an LRU list
 * and evicted, oldest first, only when a fresh block is needed and the free
 * list is empty.  Only full blocks are shared, and a sequence never reuses
 * its prompt's last token (its logits are needed), so shared blocks are
 * never written again: no copy-on-write.
 *
 * Not thread-safe: one thread (the scheduler's, or the context's owner)
 * uses a cache at a time.
 */
#ifndef LG_KV_CACHE_H
#define LG_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "lg_error.h"
#include "vocab.h"

struct lg_model;

#define LG_KV_BLOCK_SIZE_DEFAULT 32

typedef struct lg_kv_cache_params
{
	int32_t		block_size;		/* positions per block; 0 = LG_KV_BLOCK_SIZE_DEFAULT */
	int32_t		n_blocks;		/* blocks in the pool; 0 = from max_bytes */
	int64_t		max_bytes;		/* with n_blocks 0: as many blocks as fit */
	lg_kv_type	type;			/* LG_KV_F16 by default (0) */
	bool		prefix_cache;	/* key full blocks by content and share them */
	lg_backend *backend;		/* whose memory holds the pools (a GPU's); NULL: host */
} lg_kv_cache_params;

typedef struct lg_kv_stats
{
	int32_t		block_size;
	int32_t		n_blocks;		/* total */
	int32_t		n_used;			/* referenced by at least one sequence */
	int32_t		n_cached;		/* unreferenced full blocks kept for the prefix cache */
	int32_t		n_free;			/* n_blocks = n_used + n_cached + n_free */
	int64_t		prefix_lookup_tokens;	/* prompt tokens looked up */
	int64_t		prefix_hit_tokens;		/* of those, found in the cache */
	int64_t		evictions;		/* cached blocks reused for new data */
} lg_kv_stats;

typedef struct lg_kv_cache lg_kv_cache;

/* One sequence's block table.  Zero-initialised (lg_kv_seq_init) is empty. */
typedef struct lg_kv_seq
{
	int32_t    *blocks;			/* block ids, malloc'd */
	int32_t		n_blocks;
	int32_t		cap;
	int32_t		n_pos;			/* positions whose K/V are written */
	int32_t		n_hashed;		/* leading full blocks registered in the prefix cache */
	uint64_t	hash;			/* chain hash of block n_hashed - 1 (0 when none) */
} lg_kv_seq;

/* Bytes one block takes over all layers, K and V. */
size_t		lg_kv_block_bytes(const struct lg_model *m, int32_t block_size, lg_kv_type type);

lg_kv_cache *lg_kv_cache_new(const struct lg_model *m, const lg_kv_cache_params *p, lg_error *err);
/* Every sequence must have been released (their tables are the caller's). */
void		lg_kv_cache_free(lg_kv_cache *kv);
void		lg_kv_cache_stats(const lg_kv_cache *kv, lg_kv_stats *out);
int32_t		lg_kv_cache_block_size(const lg_kv_cache *kv);
lg_kv_type	lg_kv_cache_type(const lg_kv_cache *kv);
/* Whether kv's blocks have m's shape (layers, KV heads, head size). */
bool		lg_kv_cache_fits(const lg_kv_cache *kv, const struct lg_model *m);
/* Blocks a reserve can get now: free plus evictable cached blocks. */
int32_t		lg_kv_cache_available(const lg_kv_cache *kv);
/* Drop every cached (unreferenced) block from the prefix cache. */
void		lg_kv_cache_clear_prefix(lg_kv_cache *kv);

/*
 * The hash that keys a full block: parent is the chain hash of the blocks
 * before it (0 for the first), tokens its block_size tokens.  Lookups also
 * compare the stored tokens and the parent block, so the hash only picks
 * the bucket: a collision is slower, never wrong.
 */
typedef uint64_t (*lg_kv_hash_fn) (uint64_t parent, const lg_token *tokens, int32_t n);
/* Replace the hash before any block is hashed (tests force collisions with it); NULL restores the default. */
void		lg_kv_cache_set_hash_fn(lg_kv_cache *kv, lg_kv_hash_fn fn);

/*
 * Layer il's storage: [n_blocks][block_size][n_head_kv * head_dim] values
 * of the cache's type, in the backend's memory (device memory for a GPU).  Position p of a sequence is row
 * blocks[p / bs] * bs + p % bs.
 */
void	   *lg_kv_cache_k(lg_kv_cache *kv, int il);
void	   *lg_kv_cache_v(lg_kv_cache *kv, int il);

void		lg_kv_seq_init(lg_kv_seq *s);
/* Blocks s lacks to hold n_pos positions (0 when it has them). */
int32_t		lg_kv_seq_blocks_needed(const lg_kv_cache *kv, const lg_kv_seq *s, int32_t n_pos);

/*
 * For an empty s: attach the cached blocks that hold the longest prefix of
 * tokens[0..n) made of whole blocks, leaving at least one token to
 * evaluate.  Returns the positions covered (s->n_pos).  0 when the prefix
 * cache is off or nothing matches.  Counts lookup and hit tokens.
 */
int32_t		lg_kv_seq_reuse_prefix(lg_kv_cache *kv, lg_kv_seq *s, const lg_token *tokens, int32_t n);

/*
 * Give s blocks for positions 0..n_pos-1, taking free blocks first, then
 * evicting the least recently used cached block.  LG_ERR_BUSY, with s
 * unchanged, when the pool cannot supply them (the caller preempts
 * someone or waits); LG_ERR_NOMEM when the table cannot grow.
 */
lg_status	lg_kv_seq_reserve(lg_kv_cache *kv, lg_kv_seq *s, int32_t n_pos, lg_error *err);

/*
 * After evaluation wrote positions up to s->n_pos: register each newly
 * full block under the hash of tokens[0..end of block) (tokens is the
 * sequence's whole history, at least s->n_pos long).  No-op when the prefix
 * cache is off.
 */
void		lg_kv_seq_commit(lg_kv_cache *kv, lg_kv_seq *s, const lg_token *tokens);

/* Release every block of s (hashed ones stay cached) and empty it. */
void		lg_kv_seq_release(lg_kv_cache *kv, lg_kv_seq *s);

#endif							/* LG_KV_CACHE_H */
