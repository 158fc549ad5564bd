/*
 * vocab_impl.h — the vocabulary's internals, shared by vocab*.c only.
 */
#ifndef LG_VOCAB_IMPL_H
#define LG_VOCAB_IMPL_H

#include "vocab.h"
#include "pretokenize.h"

/* Token attributes as llama.cpp keeps them (bit flags, not GGUF types). */
#define LG_ATTR_UNDEFINED		0
#define LG_ATTR_UNKNOWN			(1u << 0)
#define LG_ATTR_UNUSED			(1u << 1)
#define LG_ATTR_NORMAL			(1u << 2)
#define LG_ATTR_CONTROL			(1u << 3)
#define LG_ATTR_USER_DEFINED	(1u << 4)
#define LG_ATTR_BYTE			(1u << 5)
#define LG_ATTR_LSTRIP			(1u << 7)
#define LG_ATTR_RSTRIP			(1u << 8)

/* "\xE2\x96\x81", U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's space. */
#define LG_SPM_SPACE		"\xE2\x96\x81"
#define LG_SPM_SPACE_LEN	3

typedef struct lg_token_data
{
	size_t		off;			/* text in vocab->text */
	uint32_t	len;
	float		score;
	uint32_t	attr;			/* LG_ATTR_* */
	size_t		piece_off;		/* token_to_piece(special = true) in vocab->pieces */
	uint32_t	piece_len;
} lg_token_data;

struct lg_vocab
{
	lg_vocab_type type;
	char		type_name[96];
	int32_t		n_tokens;
	lg_token_data *tok;
	char	   *text;			/* all token texts, back to back */
	char	   *pieces;			/* all cached pieces, back to back */
	int32_t		max_token_len;

	/* text -> id, open addressing; slot holds id + 1, 0 when empty */
	uint32_t   *slots;
	size_t		slot_mask;

	/* (left id, right id) -> merge rank, open addressing */
	uint64_t   *merge_keys;		/* (left + 1) << 32 | (right + 1); 0 when empty */
	int32_t    *merge_ranks;
	size_t		merge_mask;

	/* special tokens, LG_TOKEN_NULL when absent */
	lg_token	bos,
				eos,
				eot,
				eom,
				unk,
				sep,
				pad,
				mask,
				fim_pre,
				fim_suf,
				fim_mid,
				fim_pad,
				fim_rep,
				fim_sep;
	uint8_t    *eog;			/* n_tokens flags */

	/* control, user-defined and unknown tokens, longest text first */
	lg_token   *special;
	int32_t		n_special;

	/*
	 * Byte trie of those texts, to find in one pass which of them occur in a
	 * text at all; node i ends special[trie_special[i]] when that is >= 0.
	 */
	int32_t		trie_root[256];
	int32_t    *trie_child;
	int32_t    *trie_next;
	int32_t    *trie_special;
	uint8_t    *trie_byte;
	int32_t		trie_n;

	bool		add_bos;
	bool		add_eos;
	bool		add_sep;
	bool		add_space_prefix;
	bool		clean_spaces;
	bool		ignore_merges;
	bool		escape_spaces;	/* BPE only: spaces to U+2581 (Gemma 4) */
	bool		raw_utf8;		/* BPE only: words are not byte-encoded */
	bool		gemma4;
	bool		lowercase;		/* WPM normalizer */
	bool		strip_accents;

	lg_pretok  *pretok;			/* BPE only */
};

/* A growing list of token ids. */
typedef struct lg_tokvec
{
	lg_token   *v;
	size_t		n;
	size_t		cap;
} lg_tokvec;

bool		lg_tokvec_push(lg_tokvec *tv, lg_token t);

/* Id of a token text, or LG_TOKEN_NULL. */
lg_token	lg_vocab_lookup(const lg_vocab *v, const char *text, size_t len);
/* Rank of the merge (left, right), or -1. */
int32_t		lg_vocab_merge_rank(const lg_vocab *v, lg_token left, lg_token right);
/* Token for one raw byte, SPM style (<0xXX>, else the byte itself); NULL if none. */
lg_token	lg_vocab_byte_token(const lg_vocab *v, uint8_t byte);

/* The three tokenizers; each appends the tokens of one text fragment. */
lg_status	lg_spm_tokenize(const lg_vocab *v, const char *text, size_t len,
							lg_tokvec *out, lg_error *err);
lg_status	lg_bpe_tokenize(const lg_vocab *v, const char *text, size_t len,
							lg_tokvec *out, lg_error *err);
lg_status	lg_wpm_tokenize(const lg_vocab *v, const char *text, size_t len,
							lg_tokvec *out, lg_error *err);

#endif							/* LG_VOCAB_IMPL_H */
