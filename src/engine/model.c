/*
 * model.c — loading a GGUF model: hyperparameters, weight tensors (views
 * into the mapping, every shape and type checked), and the tokenizer.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const arch_names[LG_ARCH_COUNT] = {
	[LG_ARCH_LLAMA] = "llama",
	[LG_ARCH_QWEN2] = "qwen2",
	[LG_ARCH_BERT] = "bert",
	[LG_ARCH_NOMIC_BERT] = "nomic-bert",
};

/* llama.cpp's general.file_type numbers (llama_ftype) and their names. */
static const struct
{
	uint32_t	ftype;
	const char *name;
}			ftype_names[] = {
	{0, "F32"}, {1, "F16"}, {2, "Q4_0"}, {3, "Q4_1"}, {7, "Q8_0"}, {8, "Q5_0"},
	{9, "Q5_1"}, {10, "Q2_K"}, {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"},
	{14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},
	{32, "BF16"},
};

const char *
lg_arch_name(lg_arch a)
{
	return (a >= 0 && a < LG_ARCH_COUNT) ? arch_names[a] : "unknown";
}

/* Read "<arch>.<suffix>" as u32 into *out; returns false if absent. */
static bool
get_arch_u32(const lg_gguf *g, const char *arch, const char *suffix, uint32_t *out)
{
	char		key[160];

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	return lg_gguf_get_u32(g, key, out);
}

/* Read "<arch>.<suffix>" as float into *out; returns false if absent. */
static bool
get_arch_f32(const lg_gguf *g, const char *arch, const char *suffix, float *out)
{
	char		key[160];

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	return lg_gguf_get_f32(g, key, out);
}

/* A key that must be present, as a positive u32 that fits in int32. */
static lg_status
require_arch_u32(const lg_gguf *g, const char *arch, const char *suffix, int32_t *out, lg_error *err)
{
	uint32_t	v;
	char		key[160];

	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	if (lg_gguf_get(g, key) == NULL)
		return lg_error_set(err, LG_ERR_FORMAT, "missing metadata key \"%s\"", key);
	if (!lg_gguf_get_u32(g, key, &v) || v == 0 || v > (1u << 30))
		return lg_error_set(err, LG_ERR_FORMAT, "metadata key \"%s\" is not a positive integer in range", key);
	*out = (int32_t) v;
	return LG_OK;
}

/*
 * Find tensor `name` and check its type and shape.  ne1 == 0 means a 1-D
 * tensor; float_only demands F32 (norms and biases, which the forward pass
 * uses as plain float arrays).  Absent tensors are an error unless optional.
 */
static lg_status
bind_tensor(const lg_gguf *g, lg_tensor *t, const char *name, int64_t ne0, int64_t ne1,
			bool float_only, bool optional, lg_error *err)
{
	const lg_gguf_tensor *gt = lg_gguf_find_tensor(g, name);

	memset(t, 0, sizeof(*t));
	if (gt == NULL)
	{
		if (optional)
			return LG_OK;
		return lg_error_set(err, LG_ERR_FORMAT, "missing tensor \"%s\"", name);
	}
	if (gt->ne[0] != ne0 || (ne1 == 0 ? gt->n_dims != 1 : (gt->ne[1] != ne1 || gt->n_dims > 2)))
		return lg_error_set(err, LG_ERR_FORMAT,
							"tensor \"%s\" has shape [%lld, %lld], expected [%lld, %lld]",
							name, (long long) gt->ne[0], (long long) gt->ne[1],
							(long long) ne0, (long long) (ne1 ? ne1 : 1));
	if (float_only && gt->type != LG_TYPE_F32)
		return lg_error_set(err, LG_ERR_UNSUPPORTED, "tensor \"%s\" has type %s, only f32 is supported for it",
							name, lg_type_get(gt->type)->name);
	if (!float_only)
	{
		switch (gt->type)
		{
			case LG_TYPE_F32: case LG_TYPE_F16: case LG_TYPE_BF16:
			case LG_TYPE_Q4_0: case LG_TYPE_Q4_1: case LG_TYPE_Q5_0: case LG_TYPE_Q5_1:
			case LG_TYPE_Q8_0: case LG_TYPE_Q2_K: case LG_TYPE_Q3_K: case LG_TYPE_Q4_K:
			case LG_TYPE_Q5_K: case LG_TYPE_Q6_K:
				break;
			default:
				return lg_error_set(err, LG_ERR_UNSUPPORTED, "tensor \"%s\" has unsupported type %s",
									name, lg_type_get(gt->type)->name);
		}
	}
	t->name = NULL;			/* GGUF names are not NUL-terminated; callers name tensors themselves */
	t->type = gt->type;
	t->ne[0] = gt->ne[0];
	t->ne[1] = gt->ne[1];
	t->ne[2] = gt->ne[2];
	t->ne[3] = gt->ne[3];
	t->row_bytes = lg_row_size(gt->type, gt->ne[0]);
	t->data = gt->data;
	return LG_OK;
}

/* Read the architecture's hyperparameters from the metadata. */
static lg_status
load_hparams(lg_model *m, lg_error *err)
{
	const lg_gguf *g = m->gguf;
	lg_hparams *hp = &m->hp;
	const char *arch;
	uint32_t	u;
	float		f;
	char		scaling[32] = "";
	lg_status	st;
	int			i;

	if (!lg_gguf_get_cstr(g, "general.architecture", hp->arch_name, sizeof(hp->arch_name)))
		return lg_error_set(err, LG_ERR_FORMAT, "missing metadata key \"general.architecture\"");
	for (i = 0; i < LG_ARCH_COUNT; i++)
		if (strcmp(hp->arch_name, arch_names[i]) == 0)
			break;
	if (i == LG_ARCH_COUNT)
		return lg_error_set(err, LG_ERR_UNSUPPORTED,
							"model architecture \"%s\" is not supported (supported: llama, qwen2, bert, nomic-bert)", hp->arch_name);
	hp->arch = (lg_arch) i;
	arch = hp->arch_name;
	lg_gguf_get_cstr(g, "general.name", hp->name, sizeof(hp->name));

	if ((st = require_arch_u32(g, arch, "embedding_length", &hp->n_embd, err)) != LG_OK ||
		(st = require_arch_u32(g, arch, "block_count", &hp->n_layer, err)) != LG_OK ||
		(st = require_arch_u32(g, arch, "feed_forward_length", &hp->n_ff, err)) != LG_OK ||
		(st = require_arch_u32(g, arch, "attention.head_count", &hp->n_head, err)) != LG_OK)
		return st;
	hp->n_head_kv = hp->n_head;
	if (get_arch_u32(g, arch, "attention.head_count_kv", &u))
		hp->n_head_kv = (int32_t) u;
	if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0)
		return lg_error_set(err, LG_ERR_FORMAT, "attention.head_count_kv (%d) does not divide head_count (%d)",
							hp->n_head_kv, hp->n_head);
	if (hp->n_layer > 4096 || hp->n_head > 4096)
		return lg_error_set(err, LG_ERR_FORMAT, "implausible model shape (%d layers, %d heads)",
							hp->n_layer, hp->n_head);
	hp->head_dim = hp->n_embd / hp->n_head;
	if (get_arch_u32(g, arch, "attention.key_length", &u))
		hp->head_dim = (int32_t) u;
	if (hp->head_dim <= 0 || hp->head_dim > 1024 || hp->head_dim % 2 != 0)
		return lg_error_set(err, LG_ERR_FORMAT, "head dimension %d is not supported", hp->head_dim);
	if (get_arch_u32(g, arch, "attention.value_length", &u) && (int32_t) u != hp->head_dim)
		return lg_error_set(err, LG_ERR_UNSUPPORTED, "attention.value_length differs from key_length");

	hp->pooling = -1;
	if (get_arch_u32(g, arch, "pooling_type", &u))
	{
		if (u > 3)
			return lg_error_set(err, LG_ERR_UNSUPPORTED, "pooling_type %u is not supported (0-3: none, mean, cls, last)", u);
		hp->pooling = (int32_t) u;
	}
	hp->n_ctx_train = 2048;
	if (get_arch_u32(g, arch, "context_length", &u) && u > 0 && u <= (1u << 24))
		hp->n_ctx_train = (int32_t) u;
	hp->rms_eps = 1e-5f;
	if (get_arch_f32(g, arch, "attention.layer_norm_rms_epsilon", &f))
	{
		if (!(f > 0.0f && f < 1.0f))
			return lg_error_set(err, LG_ERR_FORMAT, "attention.layer_norm_rms_epsilon %g is out of range", f);
		hp->rms_eps = f;
	}
	/* encoders: LayerNorm's epsilon, and attention both ways unless the file says causal */
	hp->encoder = hp->arch == LG_ARCH_BERT || hp->arch == LG_ARCH_NOMIC_BERT;
	hp->causal = !hp->encoder;
	if (hp->encoder)
	{
		char		key[160];
		bool		b;

		if (!get_arch_f32(g, arch, "attention.layer_norm_epsilon", &f))
			return lg_error_set(err, LG_ERR_FORMAT, "missing metadata key \"%s.attention.layer_norm_epsilon\"", arch);
		if (!(f > 0.0f && f < 1.0f))
			return lg_error_set(err, LG_ERR_FORMAT, "attention.layer_norm_epsilon %g is out of range", f);
		hp->norm_eps = f;
		snprintf(key, sizeof(key), "%s.attention.causal", arch);
		if (lg_gguf_get_bool(g, key, &b))
			hp->causal = b;
		if (hp->n_head_kv != hp->n_head || (int64_t) hp->head_dim * hp->n_head != hp->n_embd)
			return lg_error_set(err, LG_ERR_UNSUPPORTED,
								"%s with grouped-query attention or a head size other than n_embd / n_head is not supported", arch);
	}

	/* RoPE: llama rotates adjacent pairs (the converter permutes Q/K); qwen2 is NeoX-style. */
	hp->rope.style = hp->arch == LG_ARCH_QWEN2 || hp->arch == LG_ARCH_NOMIC_BERT ? LG_ROPE_NEOX : LG_ROPE_NORM;
	hp->rope.n_rot = hp->head_dim;
	if (get_arch_u32(g, arch, "rope.dimension_count", &u))
		hp->rope.n_rot = (int32_t) u;
	if (hp->rope.n_rot <= 0 || hp->rope.n_rot > hp->head_dim || hp->rope.n_rot % 2 != 0)
		return lg_error_set(err, LG_ERR_FORMAT, "rope.dimension_count %d is not valid for head dimension %d",
							hp->rope.n_rot, hp->head_dim);
	hp->rope.freq_base = 10000.0f;
	if (get_arch_f32(g, arch, "rope.freq_base", &f))
	{
		if (!(f > 0.0f && isfinite(f)))
			return lg_error_set(err, LG_ERR_FORMAT, "rope.freq_base %g is out of range", f);
		hp->rope.freq_base = f;
	}
	hp->rope.freq_scale = 1.0f;
	hp->rope.attn_factor = 1.0f;
	hp->rope.beta_fast = 32.0f;
	hp->rope.beta_slow = 1.0f;
	hp->rope.n_ctx_orig = hp->n_ctx_train;
	{
		char		key[160];

		snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
		lg_gguf_get_cstr(g, key, scaling, sizeof(scaling));
	}
	if (get_arch_f32(g, arch, "rope.scaling.factor", &f) && f != 0.0f)
	{
		if (!(f > 0.0f && isfinite(f)))
			return lg_error_set(err, LG_ERR_FORMAT, "rope.scaling.factor %g is out of range", f);
		hp->rope.freq_scale = 1.0f / f;
	}
	else if (get_arch_f32(g, arch, "rope.scale_linear", &f) && f > 0.0f)
		hp->rope.freq_scale = 1.0f / f;
	if (get_arch_u32(g, arch, "rope.scaling.original_context_length", &u) && u > 0)
		hp->rope.n_ctx_orig = (int32_t) u;
	if (strcmp(scaling, "yarn") == 0)
	{
		/* llama.cpp: ext_factor 1 for YaRN; attention scale from rope.scaling.attn_factor if given */
		hp->rope.ext_factor = 1.0f;
		if (get_arch_f32(g, arch, "rope.scaling.attn_factor", &f) && f > 0.0f)
			hp->rope.attn_factor = f;
	}
	else if (scaling[0] != '\0' && strcmp(scaling, "none") != 0 && strcmp(scaling, "linear") != 0)
		return lg_error_set(err, LG_ERR_UNSUPPORTED, "rope scaling type \"%s\" is not supported", scaling);
	if (strcmp(scaling, "none") == 0)
		hp->rope.freq_scale = 1.0f;

	if (lg_gguf_get_u32(g, "general.file_type", &u))
		for (i = 0; i < (int) (sizeof(ftype_names) / sizeof(ftype_names[0])); i++)
			if (ftype_names[i].ftype == u)
				snprintf(hp->ftype_name, sizeof(hp->ftype_name), "%s", ftype_names[i].name);
	return LG_OK;
}

/*
 * A view of rows [r0, r0 + n) of a 2-D tensor (nomic-bert's fused QKV as
 * three matrices: rows are contiguous, so a row range is a matrix).
 */
static lg_tensor
tensor_rows(const lg_tensor *t, int64_t r0, int64_t n)
{
	lg_tensor	v = *t;

	v.ne[1] = n;
	v.data = (const char *) t->data + r0 * t->row_bytes;
	return v;
}

/*
 * The encoders' tensors, as llama.cpp names them: bert has separate Q/K/V
 * with biases, absolute positions and a GELU FFN with biases; nomic-bert a
 * fused QKV without biases, RoPE and a SwiGLU FFN.  Both have token types,
 * the embedding LayerNorm and two LayerNorms per layer.
 */
static lg_status
load_tensors_encoder(lg_model *m, lg_error *err)
{
	const lg_gguf *g = m->gguf;
	lg_hparams *hp = &m->hp;
	const bool	bert = hp->arch == LG_ARCH_BERT;
	int64_t		d = hp->n_embd;
	const lg_gguf_tensor *tt = lg_gguf_find_tensor(g, "token_types.weight");
	lg_status	st;
	char		name[96];

	if ((st = bind_tensor(g, &m->tok_embd, "token_embd.weight", d, hp->n_vocab, false, false, err)) != LG_OK ||
		(st = bind_tensor(g, &m->type_embd, "token_types.weight", d, tt ? tt->ne[1] : 1, false, true, err)) != LG_OK ||
		(st = bind_tensor(g, &m->pos_embd, "position_embd.weight", d, hp->n_ctx_train, false, !bert, err)) != LG_OK ||
		(st = bind_tensor(g, &m->tok_norm, "token_embd_norm.weight", d, 0, true, false, err)) != LG_OK ||
		(st = bind_tensor(g, &m->tok_norm_b, "token_embd_norm.bias", d, 0, true, false, err)) != LG_OK)
		return st;
	m->layers = calloc(hp->n_layer, sizeof(lg_layer));
	if (m->layers == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory for %d layers", hp->n_layer);
	for (int il = 0; il < hp->n_layer; il++)
	{
		lg_layer   *l = &m->layers[il];

#define BIND(field, suffix, ne0, ne1, flt, opt) \
		snprintf(name, sizeof(name), "blk.%d.%s", il, suffix); \
		if ((st = bind_tensor(g, &l->field, name, ne0, ne1, flt, opt, err)) != LG_OK) \
			return st
		if (bert)
		{
			BIND(wq, "attn_q.weight", d, d, false, false);
			BIND(wk, "attn_k.weight", d, d, false, false);
			BIND(wv, "attn_v.weight", d, d, false, false);
			BIND(bq, "attn_q.bias", d, 0, true, false);
			BIND(bk, "attn_k.bias", d, 0, true, false);
			BIND(bv, "attn_v.bias", d, 0, true, false);
			BIND(bo, "attn_output.bias", d, 0, true, false);
			BIND(ffn_up_b, "ffn_up.bias", hp->n_ff, 0, true, false);
			BIND(ffn_down_b, "ffn_down.bias", d, 0, true, false);
		}
		else
		{
			lg_tensor	qkv;

			BIND(ffn_gate, "ffn_gate.weight", d, hp->n_ff, false, false);
			snprintf(name, sizeof(name), "blk.%d.attn_qkv.weight", il);
			if ((st = bind_tensor(g, &qkv, name, d, 3 * d, false, false, err)) != LG_OK)
				return st;
			l->wq = tensor_rows(&qkv, 0, d);
			l->wk = tensor_rows(&qkv, d, d);
			l->wv = tensor_rows(&qkv, 2 * d, d);
		}
		BIND(wo, "attn_output.weight", d, d, false, false);
		BIND(attn_out_norm, "attn_output_norm.weight", d, 0, true, false);
		BIND(attn_out_norm_b, "attn_output_norm.bias", d, 0, true, false);
		BIND(ffn_up, "ffn_up.weight", d, hp->n_ff, false, false);
		BIND(ffn_down, "ffn_down.weight", hp->n_ff, d, false, false);
		BIND(layer_out_norm, "layer_output_norm.weight", d, 0, true, false);
		BIND(layer_out_norm_b, "layer_output_norm.bias", d, 0, true, false);
#undef BIND
	}
	return LG_OK;
}

/* Bind every weight tensor and check shapes against the hyperparameters. */
static lg_status
load_tensors(lg_model *m, lg_error *err)
{
	const lg_gguf *g = m->gguf;
	lg_hparams *hp = &m->hp;
	int64_t		d = hp->n_embd,
				q_dim = (int64_t) hp->n_head * hp->head_dim,
				kv_dim = (int64_t) hp->n_head_kv * hp->head_dim;
	bool		bias = hp->arch == LG_ARCH_QWEN2;
	int64_t		type_count[LG_TYPE_COUNT] = {0};
	uint64_t	i;
	lg_status	st;
	char		name[96];

	if (hp->encoder)
	{
		if ((st = load_tensors_encoder(m, err)) != LG_OK)
			return st;
		goto count;
	}
	if ((st = bind_tensor(g, &m->tok_embd, "token_embd.weight", d, hp->n_vocab, false, false, err)) != LG_OK ||
		(st = bind_tensor(g, &m->output_norm, "output_norm.weight", d, 0, true, false, err)) != LG_OK ||
		(st = bind_tensor(g, &m->output, "output.weight", d, hp->n_vocab, false, true, err)) != LG_OK ||
		(st = bind_tensor(g, &m->rope_freqs, "rope_freqs.weight", hp->rope.n_rot / 2, 0, true, true, err)) != LG_OK)
		return st;
	hp->tied_output = m->output.data == NULL;
	if (hp->tied_output)
		m->output = m->tok_embd;
	hp->rope.freq_factors = m->rope_freqs.data;

	m->layers = calloc(hp->n_layer, sizeof(lg_layer));
	if (m->layers == NULL)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory for %d layers", hp->n_layer);
	for (int il = 0; il < hp->n_layer; il++)
	{
		lg_layer   *l = &m->layers[il];

#define BIND(field, suffix, ne0, ne1, flt, opt) \
		snprintf(name, sizeof(name), "blk.%d.%s", il, suffix); \
		if ((st = bind_tensor(g, &l->field, name, ne0, ne1, flt, opt, err)) != LG_OK) \
			return st
		BIND(attn_norm, "attn_norm.weight", d, 0, true, false);
		BIND(wq, "attn_q.weight", d, q_dim, false, false);
		BIND(wk, "attn_k.weight", d, kv_dim, false, false);
		BIND(wv, "attn_v.weight", d, kv_dim, false, false);
		BIND(wo, "attn_output.weight", q_dim, d, false, false);
		BIND(bq, "attn_q.bias", q_dim, 0, true, !bias);
		BIND(bk, "attn_k.bias", kv_dim, 0, true, !bias);
		BIND(bv, "attn_v.bias", kv_dim, 0, true, !bias);
		BIND(ffn_norm, "ffn_norm.weight", d, 0, true, false);
		BIND(ffn_gate, "ffn_gate.weight", d, hp->n_ff, false, false);
		BIND(ffn_up, "ffn_up.weight", d, hp->n_ff, false, false);
		BIND(ffn_down, "ffn_down.weight", hp->n_ff, d, false, false);
#undef BIND
	}

count:
	/* parameter count and the dominant weight type, for `info` and the registry */
	hp->n_params = 0;
	for (i = 0; i < g->n_tensors; i++)
	{
		const lg_gguf_tensor *t = &g->tensors[i];
		int64_t		n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];

		hp->n_params += n;
		if (t->n_dims >= 2 && t->type < LG_TYPE_COUNT)
			type_count[t->type] += n;
	}
	hp->main_type = LG_TYPE_F32;
	for (i = 0; i < LG_TYPE_COUNT; i++)
		if (type_count[i] > type_count[hp->main_type])
			hp->main_type = (lg_type) i;
	if (hp->ftype_name[0] == '\0')
	{
		const char *n = lg_type_get(hp->main_type)->name;

		for (i = 0; n[i] && i < sizeof(hp->ftype_name) - 1; i++)
			hp->ftype_name[i] = (n[i] >= 'a' && n[i] <= 'z') ? n[i] - 32 : n[i];
		hp->ftype_name[i] = '\0';
	}
	return LG_OK;
}

lg_model *
lg_model_load(const char *path, lg_error *err)
{
	lg_model   *m = calloc(1, sizeof(lg_model));
	lg_gguf_str tmpl;

	if (m == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	m->gguf = lg_gguf_open(path, err);
	if (m->gguf == NULL)
		goto fail;
	m->file_size = m->gguf->size;
	if (load_hparams(m, err) != LG_OK)
		goto fail;
	m->vocab = lg_vocab_load(m->gguf, err);
	if (m->vocab == NULL)
		goto fail;
	m->hp.n_vocab = lg_vocab_n_tokens(m->vocab);
	if (load_tensors(m, err) != LG_OK)
		goto fail;
	if (lg_gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl))
	{
		m->chat_template = malloc(tmpl.len + 1);
		if (m->chat_template == NULL)
		{
			lg_error_set(err, LG_ERR_NOMEM, "out of memory");
			goto fail;
		}
		memcpy(m->chat_template, tmpl.s, tmpl.len);
		m->chat_template[tmpl.len] = '\0';
	}
	return m;

fail:
	lg_model_free(m);
	return NULL;
}

void
lg_model_free(lg_model *m)
{
	if (m == NULL)
		return;
	free(m->layers);
	free(m->chat_template);
	lg_vocab_free(m->vocab);
	lg_gguf_close(m->gguf);
	free(m);
}
