/*
 * vocab.h — tokenizers built from a GGUF file's tokenizer.* metadata.
 *
 * Three families, chosen by tokenizer.ggml.model:
 *   "llama"  SentencePiece-style (scores, byte fallback, leading space)
 *   "gpt2"   byte-level BPE with merges and a pre-tokenizer chosen by
 *            tokenizer.ggml.pre (gpt2, llama3, qwen2, deepseek-llm, falcon,
 *            starcoder, refact, mpt, …)
 *   "bert"   WordPiece
 * Behaviour matches llama.cpp's llama-vocab exactly.
 */
#ifndef LG_VOCAB_H
#define LG_VOCAB_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "lg_error.h"
#include "gguf.h"

typedef int32_t lg_token;

#define LG_TOKEN_NULL (-1)

typedef enum lg_vocab_type
{
	LG_VOCAB_NONE = 0,
	LG_VOCAB_SPM,				/* "llama" */
	LG_VOCAB_BPE,				/* "gpt2" */
	LG_VOCAB_WPM,				/* "bert" */
} lg_vocab_type;

/* tokenizer.ggml.token_type values */
typedef enum lg_token_attr
{
	LG_TOKEN_TYPE_UNDEFINED = 0,
	LG_TOKEN_TYPE_NORMAL = 1,
	LG_TOKEN_TYPE_UNKNOWN = 2,
	LG_TOKEN_TYPE_CONTROL = 3,
	LG_TOKEN_TYPE_USER_DEFINED = 4,
	LG_TOKEN_TYPE_UNUSED = 5,
	LG_TOKEN_TYPE_BYTE = 6,
} lg_token_attr;

typedef struct lg_vocab lg_vocab;

/* Build the tokenizer from g's metadata (g may be closed afterwards). */
lg_vocab   *lg_vocab_load(const lg_gguf *g, lg_error *err);
void		lg_vocab_free(lg_vocab *v);

lg_vocab_type lg_vocab_get_type(const lg_vocab *v);
const char *lg_vocab_type_name(const lg_vocab *v);	/* "spm", "bpe (llama3)", "wpm" */
int32_t		lg_vocab_n_tokens(const lg_vocab *v);
lg_token	lg_vocab_bos(const lg_vocab *v);	/* LG_TOKEN_NULL if none */
lg_token	lg_vocab_eos(const lg_vocab *v);
lg_token	lg_vocab_eot(const lg_vocab *v);
bool		lg_vocab_add_bos(const lg_vocab *v);	/* the metadata asks for BOS */
bool		lg_vocab_add_eos(const lg_vocab *v);
lg_token	lg_vocab_unk(const lg_vocab *v);	/* LG_TOKEN_NULL if none */
lg_token	lg_vocab_sep(const lg_vocab *v);	/* BERT's [SEP] */
lg_token	lg_vocab_pad(const lg_vocab *v);
bool		lg_vocab_add_sep(const lg_vocab *v);	/* WPM: [SEP] ends add_special */
/* Id of a token whose stored text is exactly text[0..len), or LG_TOKEN_NULL. */
lg_token	lg_vocab_find_token(const lg_vocab *v, const char *text, size_t len);
/* End of generation: EOS, EOT, or any token the metadata marks so. */
bool		lg_vocab_is_eog(const lg_vocab *v, lg_token t);
bool		lg_vocab_is_control(const lg_vocab *v, lg_token t);
/* The token's text as stored in the vocabulary (not detokenized). */
const char *lg_vocab_token_text(const lg_vocab *v, lg_token t, size_t *len);

/*
 * Tokenize len bytes of UTF-8 text.  add_special adds BOS/EOS as the
 * metadata says (like llama_tokenize's add_special); parse_special makes
 * special-token text (e.g. "<|eot_id|>") map to its token.  Writes up to
 * max_tokens ids and returns the number of tokens the text needs, which may
 * exceed max_tokens (call again with more room); negative on error.
 */
int64_t		lg_tokenize(const lg_vocab *v, const char *text, size_t len,
						bool add_special, bool parse_special,
						lg_token *tokens, int64_t max_tokens, lg_error *err);

/*
 * The text of one token as it appears in output (SPM: U+2581 → space, byte
 * tokens → the byte; BPE: byte-level decoding).  Control tokens give their
 * text only when special is true.  Returns the number of bytes the piece
 * needs (written up to bufsize), negative on error.
 */
int32_t		lg_token_to_piece(const lg_vocab *v, lg_token t, char *buf, int32_t bufsize,
							  bool special);

/*
 * Detokenize n ids (llama_detokenize semantics: SPM drops the leading space
 * that tokenization added when remove_leading_space...).  Returns the number
 * of bytes needed (written up to bufsize), negative on error.
 */
int64_t		lg_detokenize(const lg_vocab *v, const lg_token *tokens, int64_t n,
						  char *buf, int64_t bufsize, bool remove_special, bool unparse_special);

#endif							/* LG_VOCAB_H */
