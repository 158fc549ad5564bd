/*
 * quants_k.h — the K-quant ("super-block" of 256) reference routines in
 * quants_k.c, called through lg_dequantize_row / lg_quantize_row /
 * lg_vec_dot_ref in quants.c.  nb is the number of 256-value blocks.
 */
#ifndef LG_QUANTS_K_H
#define LG_QUANTS_K_H

#include "lg_types.h"

void		lg_dequant_q2_K(const lg_block_q2_K *x, float *y, int64_t nb);
void		lg_dequant_q3_K(const lg_block_q3_K *x, float *y, int64_t nb);
void		lg_dequant_q4_K(const lg_block_q4_K *x, float *y, int64_t nb);
void		lg_dequant_q5_K(const lg_block_q5_K *x, float *y, int64_t nb);
void		lg_dequant_q6_K(const lg_block_q6_K *x, float *y, int64_t nb);
void		lg_dequant_q8_K(const lg_block_q8_K *x, float *y, int64_t nb);

void		lg_quant_q2_K(const float *x, lg_block_q2_K *y, int64_t nb);
void		lg_quant_q3_K(const float *x, lg_block_q3_K *y, int64_t nb);
void		lg_quant_q4_K(const float *x, lg_block_q4_K *y, int64_t nb);
void		lg_quant_q5_K(const float *x, lg_block_q5_K *y, int64_t nb);
void		lg_quant_q6_K(const float *x, lg_block_q6_K *y, int64_t nb);
void		lg_quant_q8_K(const float *x, lg_block_q8_K *y, int64_t nb);

float		lg_dot_q2_K_q8_K(const lg_block_q2_K *x, const lg_block_q8_K *y, int64_t nb);
float		lg_dot_q3_K_q8_K(const lg_block_q3_K *x, const lg_block_q8_K *y, int64_t nb);
float		lg_dot_q4_K_q8_K(const lg_block_q4_K *x, const lg_block_q8_K *y, int64_t nb);
float		lg_dot_q5_K_q8_K(const lg_block_q5_K *x, const lg_block_q8_K *y, int64_t nb);
float		lg_dot_q6_K_q8_K(const lg_block_q6_K *x, const lg_block_q8_K *y, int64_t nb);

#endif							/* LG_QUANTS_K_H */
