/*
 * cmd_synth.c — `llamagpu synth`: write a deterministic random-weight model
 * of any shape and weight type, so tests and benchmarks need no download.
 *
 * Single types (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k,
 * q4_k, q5_k, q6_k) store every matrix in that type; q4_k_m and q5_k_m
 * follow llama.cpp's mixes (output and some attn_v/ffn_down layers in Q6_K).
 * Norms and biases are always f32.  The same arguments give the same file.
 *
 * --arch bert and nomic-bert write encoders with llama.cpp's tensor names
 * and metadata (what convert_hf_to_gguf.py writes for BERT/MiniLM/bge and
 * nomic-embed), with a WordPiece vocabulary copied (--vocab-from a bert
 * vocabulary) or built in (--vocab-wpm: the special tokens and every
 * printable ASCII character, word-initial and continuation).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>

#include "cli.h"
#include "cli_args.h"
#include "gguf.h"
#include "threadpool.h"

typedef struct synth_opts
{
	const char *arch;
	int64_t		dim, layers, heads, kv_heads, ffn, ctx, vocab_size, seed;
	float		rope_base;
	const char *vocab_from;
	bool		vocab_bytes;
	bool		vocab_wpm;
	bool		tied;
	bool		encoder;		/* bert, nomic-bert */
	int64_t		pooling;		/* <arch>.pooling_type for encoders */
	float		norm_eps;
	const char *type_name;
	lg_type		type;
	int			mix;			/* 0 pure, 4 q4_k_m, 5 q5_k_m */
	const char *out;
	int			threads;
	const char *chat_template;	/* file whose text becomes tokenizer.chat_template */
} synth_opts;

/* splitmix64: a good 64-bit mix, used to derive per-row seeds. */
static uint64_t
splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* FNV-1a of a tensor name, so each tensor gets its own stream. */
static uint64_t
hash_name(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char) *s++) * 1099511628211ULL;
	return h;
}

typedef struct fill_job
{
	lg_type		type;
	int64_t		cols, rows;
	float		scale, center;
	uint64_t	seed;
	uint8_t    *dst;
	size_t		row_bytes;
	bool		ok;
} fill_job;

/* Rows ith, ith+nth, … of a tensor: random floats, then converted. */
static void
fill_rows(void *arg, int ith, int nth)
{
	fill_job   *j = arg;
	float	   *row = malloc(sizeof(float) * j->cols);

	if (row == NULL)
	{
		j->ok = false;
		return;
	}
	for (int64_t r = ith; r < j->rows; r += nth)
	{
		uint64_t	s = splitmix64(j->seed ^ splitmix64((uint64_t) r));

		for (int64_t c = 0; c < j->cols; c++)
		{
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			row[c] = j->center + j->scale * ((float) ((s >> 40) & 0xFFFFFF) / (float) 0x800000 - 1.0f);
		}
		if (!lg_quantize_row(j->type, row, j->dst + r * j->row_bytes, j->cols))
			j->ok = false;
	}
	free(row);
}

/* llama.cpp's use_more_bits: which layers of a Q4_K_M file get Q6_K. */
static bool
use_more_bits(int64_t i, int64_t n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The weight type of a matrix under the chosen type or mix. */
static lg_type
matrix_type(const synth_opts *o, const char *suffix, int64_t layer)
{
	if (o->mix == 0)
		return o->type;
	if (strcmp(suffix, "output.weight") == 0)
		return LG_TYPE_Q6_K;
	if ((strcmp(suffix, "attn_v.weight") == 0 || strcmp(suffix, "ffn_down.weight") == 0) &&
		use_more_bits(layer, o->layers))
		return LG_TYPE_Q6_K;
	return o->mix == 5 ? LG_TYPE_Q5_K : LG_TYPE_Q4_K;
}

/* Generate one tensor and add it to the writer. */
static bool
add_random_tensor(lg_gguf_writer *w, lg_threadpool *tp, const synth_opts *o, const char *name,
				  lg_type type, int64_t cols, int64_t rows, float scale, float center)
{
	int64_t		ne[2] = {cols, rows};
	fill_job	j = {.type = type, .cols = cols, .rows = rows, .scale = scale, .center = center,
		.seed = splitmix64((uint64_t) o->seed) ^ hash_name(name), .ok = true};
	lg_status	st;

	if (cols % lg_type_get(type)->block_size != 0)
	{
		cli_fail("synth", 2, "tensor %s: row length %lld is not a multiple of %d, the block size of %s",
				 name, (long long) cols, lg_type_get(type)->block_size, lg_type_get(type)->name);
		return false;
	}
	j.row_bytes = lg_row_size(type, cols);
	j.dst = malloc(j.row_bytes * rows);
	if (j.dst == NULL)
	{
		cli_fail("synth", 1, "out of memory for tensor %s", name);
		return false;
	}
	lg_threadpool_run(tp, fill_rows, &j);
	st = j.ok ? lg_gguf_writer_add_tensor(w, name, type, rows > 1 || cols == 0 ? 2 : 1, ne, j.dst) : LG_ERR_ARG;
	free(j.dst);
	if (st != LG_OK)
	{
		cli_fail("synth", 1, "cannot add tensor %s (%s)", name, lg_status_name(st));
		return false;
	}
	return true;
}

/*
 * Copy every tokenizer.* key of a vocabulary file (but its chat template when
 * skip_template: another one replaces it); returns its token count or -1.
 */
static int64_t
copy_vocab(lg_gguf_writer *w, const char *path, bool skip_template)
{
	lg_error	err;
	lg_gguf    *v = lg_gguf_open(path, &err);
	lg_gguf_vtype t;
	uint64_t	n = 0;

	if (v == NULL)
		return cli_fail("synth", 1, "%s: %s", path, err.msg), -1;
	if (!lg_gguf_get_arr(v, "tokenizer.ggml.tokens", &t, &n) || t != LG_GGUF_STRING || n == 0)
	{
		lg_gguf_close(v);
		return cli_fail("synth", 1, "%s has no tokenizer.ggml.tokens array", path), -1;
	}
	for (uint64_t i = 0; i < v->n_kv; i++)
	{
		const lg_gguf_kv *kv = &v->kv[i];

		if (skip_template && kv->key.len == 23 && memcmp(kv->key.s, "tokenizer.chat_template", 23) == 0)
			continue;
		/* written with the encoders' metadata (2, as BERT's type_vocab_size) */
		if (kv->key.len == 31 && memcmp(kv->key.s, "tokenizer.ggml.token_type_count", 31) == 0)
			continue;
		if (kv->key.len > 10 && memcmp(kv->key.s, "tokenizer.", 10) == 0 &&
			lg_gguf_writer_copy_kv(w, v, kv) != LG_OK)
		{
			lg_gguf_close(v);
			return cli_fail("synth", 1, "cannot copy tokenizer metadata from %s", path), -1;
		}
	}
	lg_gguf_close(v);
	return (int64_t) n;
}

/*
 * A SentencePiece vocabulary of <unk>, <s>, </s> and the 256 byte tokens
 * (every text tokenizes by byte fallback), padded with unused tokens to
 * vocab_size.
 */
static int64_t
byte_vocab(lg_gguf_writer *w, int64_t vocab_size)
{
	int64_t		n = vocab_size > 259 ? vocab_size : 259;
	char	  **texts = calloc(n, sizeof(char *));
	uint64_t   *lens = calloc(n, sizeof(uint64_t));
	float	   *scores = calloc(n, sizeof(float));
	int32_t    *types = calloc(n, sizeof(int32_t));
	bool		ok = texts && lens && scores && types;

	for (int64_t i = 0; ok && i < n; i++)
	{
		texts[i] = malloc(32);
		if (texts[i] == NULL)
		{
			ok = false;
			break;
		}
		if (i < 3)
		{
			snprintf(texts[i], 32, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
			types[i] = i == 0 ? LG_TOKEN_TYPE_UNKNOWN : LG_TOKEN_TYPE_CONTROL;
		}
		else if (i < 259)
		{
			snprintf(texts[i], 32, "<0x%02X>", (unsigned) (i - 3));
			types[i] = LG_TOKEN_TYPE_BYTE;
		}
		else
		{
			snprintf(texts[i], 32, "<unused%lld>", (long long) (i - 259));
			types[i] = LG_TOKEN_TYPE_UNUSED;
		}
		lens[i] = strlen(texts[i]);
	}
	ok = ok &&
		lg_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama") == LG_OK &&
		lg_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *) texts, lens, n) == LG_OK &&
		lg_gguf_writer_add_arr(w, "tokenizer.ggml.scores", LG_GGUF_FLOAT32, scores, n) == LG_OK &&
		lg_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", LG_GGUF_INT32, types, n) == LG_OK &&
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1) == LG_OK &&
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2) == LG_OK &&
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0) == LG_OK &&
		lg_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true) == LG_OK &&
		lg_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false) == LG_OK;
	for (int64_t i = 0; texts && i < n; i++)
		free(texts[i]);
	free(texts);
	free(lens);
	free(scores);
	free(types);
	if (!ok)
		return cli_fail("synth", 1, "cannot build the byte vocabulary"), -1;
	return n;
}

/*
 * A WordPiece vocabulary as the converter writes one: [PAD] [UNK] [CLS]
 * [SEP] [MASK], then each printable ASCII character (upper case aside: the
 * tokenizer lower-cases) word-initial ("\u2581c") and as a continuation
 * ("c"), padded with [unusedN] to vocab_size.
 */
static int64_t
wpm_vocab(lg_gguf_writer *w, int64_t vocab_size)
{
	static const char *const special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
	int64_t		n_min = 5 + 2 * (0x7f - 0x21 - 26);
	int64_t		n = vocab_size > n_min ? vocab_size : n_min;
	char	  **texts = calloc(n, sizeof(char *));
	uint64_t   *lens = calloc(n, sizeof(uint64_t));
	int32_t    *types = calloc(n, sizeof(int32_t));
	int64_t		i = 0;
	bool		ok = texts && lens && types;

	for (; ok && i < n; i++)
	{
		if ((texts[i] = malloc(32)) == NULL)
		{
			ok = false;
			break;
		}
		types[i] = LG_TOKEN_TYPE_NORMAL;
		if (i < 5)
		{
			snprintf(texts[i], 32, "%s", special[i]);
			types[i] = LG_TOKEN_TYPE_CONTROL;
		}
		else if (i < n_min)
		{
			int			k = (int) (i - 5) / 2;
			/* A-Z skipped: indices past '@' map to the characters after 'Z' */
			int			ch = 0x21 + k < 'A' ? 0x21 + k : 0x21 + k + 26;
			snprintf(texts[i], 32, (i - 5) % 2 == 0 ? "\u2581%c" : "%c", ch);
		}
		else
		{
			snprintf(texts[i], 32, "[unused%lld]", (long long) (i - n_min));
			types[i] = LG_TOKEN_TYPE_UNUSED;
		}
		lens[i] = strlen(texts[i]);
	}
	ok = ok &&
		lg_gguf_writer_add_str(w, "tokenizer.ggml.model", "bert") == LG_OK &&
		lg_gguf_writer_add_str(w, "tokenizer.ggml.pre", "default") == LG_OK &&
		lg_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *) texts, lens, n) == LG_OK &&
		lg_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", LG_GGUF_INT32, types, n) == LG_OK &&
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", 0) == LG_OK &&
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 1) == LG_OK &&
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.cls_token_id", 2) == LG_OK &&
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.seperator_token_id", 3) == LG_OK &&
		lg_gguf_writer_add_u32(w, "tokenizer.ggml.mask_token_id", 4) == LG_OK;
	for (int64_t j = 0; texts && j < n; j++)
		free(texts[j]);
	free(texts);
	free(lens);
	free(types);
	if (!ok)
		return cli_fail("synth", 1, "cannot build the WordPiece vocabulary"), -1;
	return n;
}

/*
 * The tensors of an encoder (llama.cpp's names, see forward_bert.c):
 * token, token-type and (bert) position embeddings, the embedding
 * LayerNorm, and per layer the attention, its LayerNorm, the FFN and its
 * LayerNorm.  The position table is F16 in a quantized file, as llama.cpp's
 * quantizer leaves it.
 */
static bool
add_encoder_tensors(lg_gguf_writer *w, lg_threadpool *tp, const synth_opts *o, int64_t n_vocab)
{
	const bool	bert = strcmp(o->arch, "bert") == 0;
	const lg_type small = o->type == LG_TYPE_F32 ? LG_TYPE_F32 : LG_TYPE_F16;
	const float sd = 1.0f / sqrtf((float) o->dim), sf = 1.0f / sqrtf((float) o->ffn);
	char		name[96];
	bool		ok;

	ok = add_random_tensor(w, tp, o, "token_embd.weight", o->type, o->dim, n_vocab, 1.0f, 0.0f) &&
		/* F32: llama.cpp adds its row 0 with ggml_add, which takes no f16 operand */
		add_random_tensor(w, tp, o, "token_types.weight", LG_TYPE_F32, o->dim, 2, 0.5f, 0.0f) &&
		(!bert || add_random_tensor(w, tp, o, "position_embd.weight", small, o->dim, o->ctx, 0.5f, 0.0f)) &&
		add_random_tensor(w, tp, o, "token_embd_norm.weight", LG_TYPE_F32, o->dim, 1, 0.1f, 1.0f) &&
		add_random_tensor(w, tp, o, "token_embd_norm.bias", LG_TYPE_F32, o->dim, 1, 0.1f, 0.0f);
	for (int64_t il = 0; ok && il < o->layers; il++)
	{
#define MAT(sfx, cols, rows, scale) \
		(snprintf(name, sizeof(name), "blk.%lld.%s", (long long) il, sfx), \
		 add_random_tensor(w, tp, o, name, o->type, cols, rows, scale, 0.0f))
#define VEC(sfx, n, scale, center) \
		(snprintf(name, sizeof(name), "blk.%lld.%s", (long long) il, sfx), \
		 add_random_tensor(w, tp, o, name, LG_TYPE_F32, n, 1, scale, center))
		if (bert)
			ok = MAT("attn_q.weight", o->dim, o->dim, sd) && VEC("attn_q.bias", o->dim, 0.1f, 0.0f) &&
				MAT("attn_k.weight", o->dim, o->dim, sd) && VEC("attn_k.bias", o->dim, 0.1f, 0.0f) &&
				MAT("attn_v.weight", o->dim, o->dim, sd) && VEC("attn_v.bias", o->dim, 0.1f, 0.0f) &&
				MAT("attn_output.weight", o->dim, o->dim, sd) && VEC("attn_output.bias", o->dim, 0.1f, 0.0f);
		else
			ok = MAT("attn_qkv.weight", o->dim, 3 * o->dim, sd) &&
				MAT("attn_output.weight", o->dim, o->dim, sd);
		ok = ok && VEC("attn_output_norm.weight", o->dim, 0.1f, 1.0f) &&
			VEC("attn_output_norm.bias", o->dim, 0.1f, 0.0f);
		if (ok && bert)
			ok = MAT("ffn_up.weight", o->dim, o->ffn, sd) && VEC("ffn_up.bias", o->ffn, 0.1f, 0.0f) &&
				MAT("ffn_down.weight", o->ffn, o->dim, sf) && VEC("ffn_down.bias", o->dim, 0.1f, 0.0f);
		else if (ok)
			ok = MAT("ffn_gate.weight", o->dim, o->ffn, sd) && MAT("ffn_up.weight", o->dim, o->ffn, sd) &&
				MAT("ffn_down.weight", o->ffn, o->dim, sf);
		ok = ok && VEC("layer_output_norm.weight", o->dim, 0.1f, 1.0f) &&
			VEC("layer_output_norm.bias", o->dim, 0.1f, 0.0f);
#undef MAT
#undef VEC
	}
	return ok;
}

/* llama.cpp's general.file_type for the chosen type. */
static uint32_t
file_type(const synth_opts *o)
{
	if (o->mix == 4)
		return 15;
	if (o->mix == 5)
		return 17;
	switch (o->type)
	{
		case LG_TYPE_F32: return 0;
		case LG_TYPE_F16: return 1;
		case LG_TYPE_Q4_0: return 2;
		case LG_TYPE_Q4_1: return 3;
		case LG_TYPE_Q8_0: return 7;
		case LG_TYPE_Q5_0: return 8;
		case LG_TYPE_Q5_1: return 9;
		case LG_TYPE_Q2_K: return 10;
		case LG_TYPE_Q3_K: return 12;
		case LG_TYPE_Q4_K: return 15;
		case LG_TYPE_Q5_K: return 17;
		case LG_TYPE_Q6_K: return 18;
		case LG_TYPE_BF16: return 32;
		default: return 0;
	}
}

/* Parse the command line into o; returns 0 or an exit status. */
static int
parse_synth(int argc, char **argv, synth_opts *o)
{
	static const struct
	{
		const char *flag;
		size_t		off;
		int64_t		lo, hi;
	}			ints[] = {
		{"--dim", offsetof(synth_opts, dim), 2, 1 << 16},
		{"--layers", offsetof(synth_opts, layers), 1, 1024},
		{"--heads", offsetof(synth_opts, heads), 1, 1024},
		{"--kv-heads", offsetof(synth_opts, kv_heads), 1, 1024},
		{"--ffn", offsetof(synth_opts, ffn), 1, 1 << 18},
		{"--ctx", offsetof(synth_opts, ctx), 1, 1 << 24},
		{"--vocab-size", offsetof(synth_opts, vocab_size), 259, 1 << 20},
		{"--seed", offsetof(synth_opts, seed), 0, INT64_MAX},
	};

	memset(o, 0, sizeof(*o));
	o->ctx = 0;
	o->rope_base = 0.0f;
	o->pooling = -1;
	o->norm_eps = 1e-12f;
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i], *val;
		bool		found = false;

		if (strcmp(a, "--vocab-bytes") == 0 || strcmp(a, "--tied") == 0 || strcmp(a, "--vocab-wpm") == 0)
		{
			*(a[2] == 't' ? &o->tied : a[8] == 'b' ? &o->vocab_bytes : &o->vocab_wpm) = true;
			continue;
		}
		if (strcmp(a, "--help") == 0)
		{
			printf("usage: llamagpu synth --arch llama|qwen2 --dim D --layers L --heads H --kv-heads K --ffn F\n"
				   "         (--vocab-from VOCAB.gguf | --vocab-bytes [--vocab-size N]) --type T --seed S\n"
				   "         [--ctx N] [--rope-base B] [--tied] [--chat-template FILE] [-t THREADS] -o OUT.gguf\n"
				   "       llamagpu synth --arch bert|nomic-bert --dim D --layers L --heads H --ffn F\n"
				   "         (--vocab-from BERT-VOCAB.gguf | --vocab-wpm [--vocab-size N]) --type T --seed S\n"
				   "         [--ctx N (512; nomic-bert 2048)] [--pooling none|mean|cls|last (mean)]\n"
				   "         [--norm-eps E (1e-12)] [--rope-base B (nomic-bert: 1000)] -o OUT.gguf\n"
				   "  types: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k (every matrix)\n"
				   "         q4_k_m q5_k_m (llama.cpp's mixes)\n");
			exit(0);
		}
		if ((val = cli_value("synth", argc, argv, &i)) == NULL)
			return 2;
		for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
			if (strcmp(a, ints[k].flag) == 0)
			{
				if (!cli_parse_i64(val, ints[k].lo, ints[k].hi, (int64_t *) ((char *) o + ints[k].off)))
					return cli_fail("synth", 2, "invalid value \"%s\" for %s (%lld to %lld)", val, a,
									(long long) ints[k].lo, (long long) ints[k].hi);
				found = true;
			}
		if (found)
			continue;
		if (strcmp(a, "--arch") == 0)
			o->arch = val;
		else if (strcmp(a, "--vocab-from") == 0)
			o->vocab_from = val;
		else if (strcmp(a, "--type") == 0)
			o->type_name = val;
		else if (strcmp(a, "--chat-template") == 0)
			o->chat_template = val;
		else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
			o->out = val;
		else if (strcmp(a, "--pooling") == 0)
		{
			static const char *const names[] = {"none", "mean", "cls", "last"};

			for (int k = 0; k < 4; k++)
				if (strcmp(val, names[k]) == 0)
					o->pooling = k;
			if (o->pooling < 0)
				return cli_fail("synth", 2, "--pooling must be none, mean, cls or last");
		}
		else if (strcmp(a, "--norm-eps") == 0)
		{
			if (!cli_parse_f32(val, 1e-30f, 0.1f, &o->norm_eps))
				return cli_fail("synth", 2, "invalid --norm-eps \"%s\"", val);
		}
		else if (strcmp(a, "--rope-base") == 0)
		{
			if (!cli_parse_f32(val, 1.0f, 1e9f, &o->rope_base))
				return cli_fail("synth", 2, "invalid --rope-base \"%s\"", val);
		}
		else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0)
		{
			int64_t		n;

			if (!cli_parse_i64(val, 0, 1024, &n))
				return cli_fail("synth", 2, "invalid thread count \"%s\"", val);
			o->threads = (int) n;
		}
		else
			return cli_fail("synth", 2, "unknown option \"%s\"", a);
	}
	if (o->arch == NULL || (strcmp(o->arch, "llama") != 0 && strcmp(o->arch, "qwen2") != 0 &&
							strcmp(o->arch, "bert") != 0 && strcmp(o->arch, "nomic-bert") != 0))
		return cli_fail("synth", 2, "--arch must be llama, qwen2, bert or nomic-bert");
	o->encoder = strcmp(o->arch, "bert") == 0 || strcmp(o->arch, "nomic-bert") == 0;
	if (o->ctx == 0)
		o->ctx = strcmp(o->arch, "bert") == 0 ? 512 : 2048;
	if (o->rope_base == 0.0f)
		o->rope_base = strcmp(o->arch, "nomic-bert") == 0 ? 1000.0f : 10000.0f;
	if (o->pooling < 0)
		o->pooling = 1;
	if (o->encoder && (o->vocab_bytes || o->tied || o->chat_template || (o->kv_heads && o->kv_heads != o->heads)))
		return cli_fail("synth", 2, "encoders take --vocab-wpm or --vocab-from, and no --tied, --chat-template or --kv-heads");
	if (!o->encoder && o->vocab_wpm)
		return cli_fail("synth", 2, "--vocab-wpm is for --arch bert and nomic-bert");
	if (o->vocab_wpm)
		o->vocab_bytes = true;	/* "built in", for the check below */
	if (!o->dim || !o->layers || !o->heads || !o->ffn || o->type_name == NULL || o->out == NULL)
		return cli_fail("synth", 2, "--dim, --layers, --heads, --ffn, --type and -o are required");
	if (!o->kv_heads)
		o->kv_heads = o->heads;
	if (o->dim % o->heads != 0 || o->heads % o->kv_heads != 0 || (o->dim / o->heads) % 2 != 0)
		return cli_fail("synth", 2, "--heads must divide --dim into an even head size, and --kv-heads must divide --heads");
	if ((o->vocab_from != NULL) == o->vocab_bytes)
		return cli_fail("synth", 2, "give exactly one of --vocab-from FILE and --vocab-bytes");
	if (strcasecmp(o->type_name, "q4_k_m") == 0)
		o->mix = 4;
	else if (strcasecmp(o->type_name, "q5_k_m") == 0)
		o->mix = 5;
	if (!lg_type_from_name(o->type_name, &o->type) || o->type == LG_TYPE_Q8_1 || o->type == LG_TYPE_Q8_K ||
		!lg_type_get(o->type)->block_size || (o->type >= LG_TYPE_I8 && o->type != LG_TYPE_BF16))
		return cli_fail("synth", 2, "unknown or unsupported weight type \"%s\"", o->type_name);
	return 0;
}

/* tokenizer.chat_template from a Jinja file, so chat can be tested on a random model. */
static bool
add_chat_template(lg_gguf_writer *w, const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *text = NULL;
	long		n;
	bool		ok;

	if (f == NULL)
		return cli_fail("synth", 1, "cannot open %s: %s", path, strerror(errno)), false;
	ok = fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(text = malloc((size_t) n + 1)) != NULL && fread(text, 1, (size_t) n, f) == (size_t) n;
	fclose(f);
	if (ok)
	{
		text[n] = '\0';
		ok = lg_gguf_writer_add_str(w, "tokenizer.chat_template", text) == LG_OK;
	}
	free(text);
	if (!ok)
		cli_fail("synth", 1, "cannot read the chat template %s", path);
	return ok;
}

int
cmd_synth(int argc, char **argv)
{
	synth_opts	o;
	lg_gguf_writer *w;
	lg_threadpool *tp;
	lg_error	err;
	int64_t		n_vocab, hd, q_dim, kv_dim;
	char		key[128], name[96];
	bool		ok = true;
	int			rc;

	if ((rc = parse_synth(argc, argv, &o)) != 0)
		return rc;
	hd = o.dim / o.heads;
	q_dim = o.dim;
	kv_dim = o.kv_heads * hd;
	w = lg_gguf_writer_new();
	tp = lg_threadpool_new(o.threads, &err);
	if (w == NULL || tp == NULL)
		return cli_fail("synth", 1, "out of memory");

	n_vocab = o.vocab_wpm ? wpm_vocab(w, o.vocab_size) :
		o.vocab_bytes ? byte_vocab(w, o.vocab_size) : copy_vocab(w, o.vocab_from, o.chat_template != NULL);
	if (n_vocab < 0)
		ok = false;
	if (ok && o.chat_template != NULL)
		ok = add_chat_template(w, o.chat_template);
#define META(fn, k, v) (snprintf(key, sizeof(key), "%s.%s", o.arch, k), fn(w, key, v) == LG_OK)
	ok = ok && lg_gguf_writer_add_str(w, "general.architecture", o.arch) == LG_OK &&
		lg_gguf_writer_add_str(w, "general.name", "llamagpu synthetic") == LG_OK &&
		lg_gguf_writer_add_u32(w, "general.file_type", file_type(&o)) == LG_OK &&
		META(lg_gguf_writer_add_u32, "context_length", (uint32_t) o.ctx) &&
		META(lg_gguf_writer_add_u32, "embedding_length", (uint32_t) o.dim) &&
		META(lg_gguf_writer_add_u32, "block_count", (uint32_t) o.layers) &&
		META(lg_gguf_writer_add_u32, "feed_forward_length", (uint32_t) o.ffn) &&
		META(lg_gguf_writer_add_u32, "attention.head_count", (uint32_t) o.heads);
	if (o.encoder)
	{
		ok = ok && META(lg_gguf_writer_add_f32, "attention.layer_norm_epsilon", o.norm_eps) &&
			META(lg_gguf_writer_add_bool, "attention.causal", false) &&
			META(lg_gguf_writer_add_u32, "pooling_type", (uint32_t) o.pooling) &&
			lg_gguf_writer_add_u32(w, "tokenizer.ggml.token_type_count", 2) == LG_OK;
		if (ok && strcmp(o.arch, "nomic-bert") == 0)
			ok = META(lg_gguf_writer_add_u32, "rope.dimension_count", (uint32_t) hd) &&
				META(lg_gguf_writer_add_f32, "rope.freq_base", o.rope_base);
		if (!ok && n_vocab >= 0)
			cli_fail("synth", 1, "cannot write the %s metadata", o.arch);
		ok = ok && add_encoder_tensors(w, tp, &o, n_vocab);
		goto write;
	}
	ok = ok &&
		META(lg_gguf_writer_add_u32, "attention.head_count_kv", (uint32_t) o.kv_heads) &&
		META(lg_gguf_writer_add_u32, "rope.dimension_count", (uint32_t) hd) &&
		META(lg_gguf_writer_add_f32, "rope.freq_base", o.rope_base) &&
		META(lg_gguf_writer_add_f32, "attention.layer_norm_rms_epsilon", 1e-5f);
#undef META

	/* embeddings near unit scale; matrices scaled by 1/sqrt(fan-in); norms near 1 */
	ok = ok && add_random_tensor(w, tp, &o, "token_embd.weight",
								 o.mix == 5 ? LG_TYPE_Q5_K : o.mix == 4 ? LG_TYPE_Q4_K : o.type,
								 o.dim, n_vocab, 1.0f, 0.0f);
	for (int64_t il = 0; ok && il < o.layers; il++)
	{
		float		sd = 1.0f / sqrtf((float) o.dim), sf = 1.0f / sqrtf((float) o.ffn);

#define MAT(sfx, cols, rows, scale) \
		(snprintf(name, sizeof(name), "blk.%lld.%s", (long long) il, sfx), \
		 add_random_tensor(w, tp, &o, name, matrix_type(&o, sfx, il), cols, rows, scale, 0.0f))
#define VEC(sfx, n, scale, center) \
		(snprintf(name, sizeof(name), "blk.%lld.%s", (long long) il, sfx), \
		 add_random_tensor(w, tp, &o, name, LG_TYPE_F32, n, 1, scale, center))
		ok = VEC("attn_norm.weight", o.dim, 0.1f, 1.0f) &&
			MAT("attn_q.weight", o.dim, q_dim, sd) &&
			MAT("attn_k.weight", o.dim, kv_dim, sd) &&
			MAT("attn_v.weight", o.dim, kv_dim, sd) &&
			MAT("attn_output.weight", q_dim, o.dim, sd) &&
			VEC("ffn_norm.weight", o.dim, 0.1f, 1.0f) &&
			MAT("ffn_gate.weight", o.dim, o.ffn, sd) &&
			MAT("ffn_up.weight", o.dim, o.ffn, sd) &&
			MAT("ffn_down.weight", o.ffn, o.dim, sf);
		if (ok && strcmp(o.arch, "qwen2") == 0)
			ok = VEC("attn_q.bias", q_dim, 0.1f, 0.0f) &&
				VEC("attn_k.bias", kv_dim, 0.1f, 0.0f) &&
				VEC("attn_v.bias", kv_dim, 0.1f, 0.0f);
#undef MAT
#undef VEC
	}
	ok = ok && add_random_tensor(w, tp, &o, "output_norm.weight", LG_TYPE_F32, o.dim, 1, 0.1f, 1.0f);
	if (ok && !o.tied)
		ok = add_random_tensor(w, tp, &o, "output.weight", matrix_type(&o, "output.weight", 0),
							   o.dim, n_vocab, 1.0f / sqrtf((float) o.dim), 0.0f);
write:
	lg_error_clear(&err);
	if (ok && lg_gguf_writer_write(w, o.out, &err) != LG_OK)
		ok = (cli_fail("synth", 1, "%s: %s", o.out, err.msg), false);
	lg_gguf_writer_free(w);
	lg_threadpool_free(tp);
	return ok ? 0 : 1;
}
