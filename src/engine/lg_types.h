/*
 * lg_types.h — tensor element types as GGUF numbers them (ggml_type), their
 * block layouts, and conversions to and from float.
 *
 * The numbering and the byte layout of every block are GGUF's, so weights are
 * used straight from the mmapped file.  Quantized types store blocks of
 * LG_QK (32) or LG_QK_K (256) values.
 */
#ifndef LG_TYPES_H
#define LG_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum lg_type
{
	LG_TYPE_F32 = 0,
	LG_TYPE_F16 = 1,
	LG_TYPE_Q4_0 = 2,
	LG_TYPE_Q4_1 = 3,
	LG_TYPE_Q5_0 = 6,
	LG_TYPE_Q5_1 = 7,
	LG_TYPE_Q8_0 = 8,
	LG_TYPE_Q8_1 = 9,
	LG_TYPE_Q2_K = 10,
	LG_TYPE_Q3_K = 11,
	LG_TYPE_Q4_K = 12,
	LG_TYPE_Q5_K = 13,
	LG_TYPE_Q6_K = 14,
	LG_TYPE_Q8_K = 15,
	LG_TYPE_I8 = 24,
	LG_TYPE_I16 = 25,
	LG_TYPE_I32 = 26,
	LG_TYPE_I64 = 27,
	LG_TYPE_F64 = 28,
	LG_TYPE_BF16 = 30,
	LG_TYPE_COUNT = 40			/* upper bound of the numbering, not a type */
} lg_type;

#define LG_QK 32
#define LG_QK_K 256
#define LG_K_SCALE_SIZE 12

typedef uint16_t lg_f16;		/* IEEE half, stored bits */
typedef uint16_t lg_bf16;		/* bfloat16, stored bits */

/* Block layouts: byte-for-byte those of GGUF files. */
typedef struct { lg_f16 d; uint8_t qs[LG_QK / 2]; } lg_block_q4_0;		/* 18 bytes */
typedef struct { lg_f16 d, m; uint8_t qs[LG_QK / 2]; } lg_block_q4_1;	/* 20 */
typedef struct { lg_f16 d; uint8_t qh[4]; uint8_t qs[LG_QK / 2]; } lg_block_q5_0;	/* 22 */
typedef struct { lg_f16 d, m; uint8_t qh[4]; uint8_t qs[LG_QK / 2]; } lg_block_q5_1;	/* 24 */
typedef struct { lg_f16 d; int8_t qs[LG_QK]; } lg_block_q8_0;			/* 34 */
typedef struct { lg_f16 d, s; int8_t qs[LG_QK]; } lg_block_q8_1;		/* 36: s = d * sum(qs) */
typedef struct { uint8_t scales[LG_QK_K / 16]; uint8_t qs[LG_QK_K / 4]; lg_f16 d, dmin; } lg_block_q2_K;	/* 84 */
typedef struct { uint8_t hmask[LG_QK_K / 8]; uint8_t qs[LG_QK_K / 4]; uint8_t scales[12]; lg_f16 d; } lg_block_q3_K;	/* 110 */
typedef struct { lg_f16 d, dmin; uint8_t scales[LG_K_SCALE_SIZE]; uint8_t qs[LG_QK_K / 2]; } lg_block_q4_K;	/* 144 */
typedef struct { lg_f16 d, dmin; uint8_t scales[LG_K_SCALE_SIZE]; uint8_t qh[LG_QK_K / 8]; uint8_t qs[LG_QK_K / 2]; } lg_block_q5_K;	/* 176 */
typedef struct { uint8_t ql[LG_QK_K / 2]; uint8_t qh[LG_QK_K / 4]; int8_t scales[LG_QK_K / 16]; lg_f16 d; } lg_block_q6_K;	/* 210 */
typedef struct { float d; int8_t qs[LG_QK_K]; int16_t bsums[LG_QK_K / 16]; } lg_block_q8_K;	/* 292 */

typedef struct lg_type_info
{
	const char *name;			/* "q4_0", as llama.cpp spells it */
	int			block_size;		/* values per block; 0 if the type is unknown */
	size_t		type_size;		/* bytes per block */
	bool		quantized;
	lg_type		vec_dot_type;	/* type activations are converted to for dot products */
} lg_type_info;

/* Info for a type number; block_size 0 for numbers that are not a type. */
const lg_type_info *lg_type_get(uint32_t type);
bool		lg_type_valid(uint32_t type);
/* Parse "q4_0", "f16", "q4_k", "q4_k_m"… (case-insensitive); false if unknown. */
bool		lg_type_from_name(const char *name, lg_type *out);
/* Alignment in bytes that data of this type needs in memory (1, 2, 4 or 8). */
size_t		lg_type_alignment(lg_type type);
/* Bytes for n values of type (n a multiple of the block size); 0 on overflow. */
size_t		lg_row_size(lg_type type, int64_t n);

float		lg_f16_to_f32(lg_f16 h);
lg_f16		lg_f32_to_f16(float f);		/* round to nearest even */
float		lg_bf16_to_f32(lg_bf16 h);
lg_bf16		lg_f32_to_bf16(float f);	/* round to nearest even */

/*
 * Reference conversions (scalar, exactly as ggml defines them).  n is a
 * multiple of the type's block size.  Returns false if the type has no such
 * conversion.
 */
bool		lg_dequantize_row(lg_type type, const void *src, float *dst, int64_t n);
bool		lg_quantize_row(lg_type type, const float *src, void *dst, int64_t n);

/*
 * Reference dot product of n values: x is a row of weights of type `type`,
 * y a row of activations already converted to lg_type_get(type)->vec_dot_type.
 */
bool		lg_vec_dot_ref(lg_type type, int64_t n, const void *x, const void *y, float *out);

#endif							/* LG_TYPES_H */
