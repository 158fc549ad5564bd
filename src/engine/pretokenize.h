/*
 * pretokenize.h — byte-level BPE pre-tokenizers (tokenizer.ggml.pre).
 *
 * A pre-tokenizer is a list of regular expressions applied in turn, each one
 * splitting every piece the previous one produced (text between matches is
 * kept as a piece of its own), exactly as llama.cpp's unicode_regex_split
 * does.  The two most common expressions (GPT-2's and Llama 3's) and two
 * special ones (Kimi-K2, AFMoE digits) are hand-written scanners there, and
 * here too; the rest run on PCRE2 against the same "collapsed" text llama.cpp
 * feeds std::regex, so that both agree on every input.
 */
#ifndef LG_PRETOKENIZE_H
#define LG_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "lg_error.h"

/* Tokenizer settings a pre-tokenizer name implies (llama_vocab::load). */
#define LG_PRE_NO_CLEAN_SPACES	0x0001	/* detokenize keeps " ," etc. */
#define LG_PRE_IGNORE_MERGES	0x0002	/* a word that is a token is taken whole */
#define LG_PRE_ADD_BOS			0x0004	/* add_bos defaults to true */
#define LG_PRE_NO_BOS_ID		0x0008	/* the BOS id defaults to none */
#define LG_PRE_ADD_SEP			0x0010	/* add_sep defaults to true */
#define LG_PRE_ESCAPE_SPACES	0x0020	/* SPM-style: spaces become U+2581 */
#define LG_PRE_RAW_UTF8			0x0040	/* no GPT-2 byte encoding of words */
#define LG_PRE_GEMMA4			0x0080	/* Gemma 4's newline-run rule */
#define LG_PRE_FORCE_BOS		0x0100	/* add_bos is true whatever the metadata */

typedef struct lg_pretok lg_pretok;

/* One tokenizer.ggml.pre value and what it selects. */
typedef struct lg_pretok_def
{
	const char *name;			/* the metadata value */
	int			set;			/* index of its expression list */
	unsigned	flags;			/* LG_PRE_* */
} lg_pretok_def;

/* Word boundaries: lengths in code points. */
typedef struct lg_pretok_words
{
	size_t	   *len;
	size_t		n;
	size_t		cap;
} lg_pretok_words;

/* The definition for a tokenizer.ggml.pre value, or NULL if unknown. */
const lg_pretok_def *lg_pretok_find(const char *name, size_t len);

/* Compile the expressions of def.  NULL with err set on failure. */
lg_pretok  *lg_pretok_new(const lg_pretok_def *def, lg_error *err);
void		lg_pretok_free(lg_pretok *p);
const lg_pretok_def *lg_pretok_get_def(const lg_pretok *p);

/*
 * Split n code points into words; on success words->len[0..words->n) sum to
 * n (empty pieces are dropped).  words is reset first and may be reused.
 */
lg_status	lg_pretok_split(const lg_pretok *p, const uint32_t *cpts, size_t n,
							lg_pretok_words *words, lg_error *err);
void		lg_pretok_words_free(lg_pretok_words *words);

#endif							/* LG_PRETOKENIZE_H */
