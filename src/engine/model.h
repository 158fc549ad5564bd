/*
 * model.h — a loaded model (hyperparameters, weights, tokenizer) and an
 * inference context (one sequence's KV cache and scratch buffers).
 *
 * Weights stay in the mmapped GGUF file; the model owns the mapping.  A
 * context evaluates tokens at the end of its sequence and returns logits.
 */
#ifndef LG_MODEL_H
#define LG_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "lg_error.h"
#include "gguf.h"
#include "vocab.h"
#include "backend.h"

typedef enum lg_arch
{
	LG_ARCH_LLAMA = 0,			/* llama, mistral, tinyllama, smollm */
	LG_ARCH_QWEN2,				/* QKV bias, NeoX RoPE */
	LG_ARCH_BERT,				/* encoder: absolute positions, post-norm, GELU */
	LG_ARCH_NOMIC_BERT,			/* encoder: NeoX RoPE, fused QKV, SwiGLU */
	LG_ARCH_COUNT
} lg_arch;

typedef struct lg_hparams
{
	lg_arch		arch;
	char		arch_name[32];	/* general.architecture */
	char		name[128];		/* general.name, if any */
	int32_t		n_vocab;
	int32_t		n_ctx_train;	/* <arch>.context_length */
	int32_t		n_embd;			/* dim */
	int32_t		n_layer;
	int32_t		n_head;
	int32_t		n_head_kv;
	int32_t		head_dim;		/* n_embd / n_head unless <arch>.attention.key_length */
	int32_t		n_ff;
	float		rms_eps;
	lg_rope_params rope;
	bool		tied_output;	/* output.weight absent: reuse token_embd */
	int64_t		n_params;
	lg_type		main_type;		/* most common weight type ("ftype") */
	/* embeddings (embed.h) */
	bool		encoder;		/* bert-like: bidirectional, no output head */
	bool		causal;			/* <arch>.attention.causal (encoders: false) */
	int32_t		pooling;		/* <arch>.pooling_type (lg_pooling), -1 when absent */
	float		norm_eps;		/* <arch>.attention.layer_norm_epsilon (LayerNorm) */
	char		ftype_name[16];	/* "Q4_K_M" when general.file_type says so */
} lg_hparams;

typedef struct lg_layer
{
	lg_tensor	attn_norm;		/* [n_embd] f32 */
	lg_tensor	wq;				/* [n_embd] -> [n_head*head_dim] */
	lg_tensor	wk;				/* [n_embd] -> [n_head_kv*head_dim] */
	lg_tensor	wv;				/* [n_embd] -> [n_head_kv*head_dim] */
	lg_tensor	wo;				/* [n_head*head_dim] -> [n_embd] */
	lg_tensor	bq, bk, bv;		/* qwen2 biases; data NULL when absent */
	lg_tensor	ffn_norm;		/* [n_embd] f32 */
	lg_tensor	ffn_gate;		/* [n_embd] -> [n_ff] */
	lg_tensor	ffn_up;			/* [n_embd] -> [n_ff] */
	lg_tensor	ffn_down;		/* [n_ff] -> [n_embd] */
	/*
	 * encoders (forward_bert.c); data NULL when absent.  nomic-bert's fused
	 * attn_qkv is bound as three row-range views in wq, wk, wv.
	 */
	lg_tensor	bo;				/* attn_output.bias */
	lg_tensor	attn_out_norm, attn_out_norm_b;	/* LayerNorm after attention */
	lg_tensor	ffn_up_b, ffn_down_b;
	lg_tensor	layer_out_norm, layer_out_norm_b;	/* LayerNorm after the FFN */
} lg_layer;

typedef struct lg_model
{
	lg_hparams	hp;
	lg_gguf    *gguf;			/* owns the mapping the tensors point into */
	lg_vocab   *vocab;
	lg_tensor	tok_embd;		/* [n_embd] x n_vocab */
	lg_tensor	output_norm;	/* [n_embd] f32 */
	lg_tensor	output;			/* [n_embd] -> [n_vocab]; == tok_embd when tied */
	lg_tensor	rope_freqs;		/* optional [n_rot/2] f32 */
	/* encoders: token-type row 0, absolute positions (bert), embedding LayerNorm */
	lg_tensor	type_embd;		/* [n_embd] x n_token_types, or data NULL */
	lg_tensor	pos_embd;		/* [n_embd] x n_ctx_train (bert) */
	lg_tensor	tok_norm, tok_norm_b;	/* [n_embd] f32 */
	lg_layer   *layers;			/* [n_layer] */
	char	   *chat_template;	/* tokenizer.chat_template or NULL (owned) */
	uint64_t	file_size;
} lg_model;

/* Load, validate shapes and types of every tensor, build the tokenizer. */
lg_model   *lg_model_load(const char *path, lg_error *err);
void		lg_model_free(lg_model *m);
const char *lg_arch_name(lg_arch a);

typedef struct lg_context_params
{
	int32_t		n_ctx;			/* positions in the KV cache; 0 = min(n_ctx_train, 4096) */
	int32_t		n_batch;		/* max tokens per forward call (prompt chunk); 0 = 512 */
	lg_kv_type	kv_type;		/* LG_KV_F16 by default */
	int32_t		n_threads;		/* 0 = all CPUs */
	lg_backend *backend;		/* NULL: the context creates a backend it owns */
	bool		reference;		/* with backend NULL: scalar reference kernels */
	const char *device;			/* with backend NULL: lg_backend_open's name; NULL = "cpu" */
	/*
	 * A shared paged KV cache (kv_cache.h) for lg_context_eval_batch; not
	 * owned.  NULL: the context makes a private cache of n_ctx positions
	 * with one sequence in it, which lg_context_eval uses.
	 */
	struct lg_kv_cache *kv;
} lg_context_params;

typedef struct lg_context lg_context;

void		lg_context_params_default(lg_context_params *p);
lg_context *lg_context_new(const lg_model *m, const lg_context_params *p, lg_error *err);
void		lg_context_free(lg_context *c);
/* Forget the sequence (KV cache contents). */
void		lg_context_reset(lg_context *c);
/* Drop positions >= pos (e.g. to reuse a common prefix). */
lg_status	lg_context_truncate(lg_context *c, int32_t pos, lg_error *err);
int32_t		lg_context_pos(const lg_context *c);	/* tokens in the cache */
int32_t		lg_context_n_ctx(const lg_context *c);
/* Name of the backend the context computes on: "cpu", "cuda:0". */
const char *lg_context_device(const lg_context *c);
const lg_model *lg_context_model(const lg_context *c);

/*
 * A function the context calls between layers and between prompt chunks;
 * when it returns true, evaluation stops with LG_ERR_CANCELLED (the
 * positions already written stay in the cache).  fn NULL removes it.
 */
typedef bool (*lg_abort_fn) (void *arg);
void		lg_context_set_abort(lg_context *c, lg_abort_fn fn, void *arg);

/*
 * Evaluate n tokens after the current position (split into n_batch chunks).
 * logits: NULL, or room for n_vocab floats (all_logits false: the last
 * token's) or n*n_vocab floats (all_logits true: every token's, in order).
 * LG_ERR_RANGE when the context would overflow (nothing is evaluated then).
 */
lg_status	lg_context_eval(lg_context *c, const lg_token *tokens, int32_t n,
							float *logits, bool all_logits, lg_error *err);

/*
 * One sequence's share of a batch: n_tokens new tokens at positions
 * kv->n_pos .. kv->n_pos + n_tokens - 1.  The caller has reserved blocks
 * for them (lg_kv_seq_reserve).  want_logits asks for the last token's
 * logits.
 */
typedef struct lg_batch_seq
{
	struct lg_kv_seq *kv;
	const lg_token *tokens;
	int32_t		n_tokens;
	bool		want_logits;
} lg_batch_seq;

/*
 * Evaluate several sequences' tokens in one forward pass: the matrix
 * products run over all tokens together, attention per sequence over its
 * own blocks.  The context must have been made with params.kv (the cache
 * the sequences' blocks belong to); the total of n_tokens must be at most
 * n_batch.  logits receives one n_vocab row per sequence with want_logits,
 * in order.  On success each kv->n_pos advances by its n_tokens (the
 * caller then calls lg_kv_seq_commit).  On error nothing advances.
 */
lg_status	lg_context_eval_batch(lg_context *c, lg_batch_seq *seqs, int32_t n_seqs,
								  float *logits, lg_error *err);
/*
 * lg_context_eval_batch with the next tokens drawn on the device: for the
 * k-th sequence with want_logits, ids[k] gets a token sampled with
 * params[k], and the logits never leave the device.  LG_ERR_UNSUPPORTED
 * when the backend cannot sample (see lg_context_can_sample).
 */
lg_status	lg_context_eval_batch_sample(lg_context *c, lg_batch_seq *seqs, int32_t n_seqs,
										 const lg_device_sample *params, lg_token *ids, lg_error *err);
/* Whether the context's backend samples on the device. */
bool		lg_context_can_sample(const lg_context *c);
int32_t		lg_context_n_batch(const lg_context *c);

#endif							/* LG_MODEL_H */
