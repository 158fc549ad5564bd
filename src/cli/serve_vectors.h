/*
 * serve_vectors.h — embedding vectors on the wire (serve_vectors.c):
 * pure functions, no sockets or HTTP, shared by local and remote EMBED.
 */
#ifndef LG_SERVE_VECTORS_H
#define LG_SERVE_VECTORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "json_value.h"
#include "serve_protocol.h"

/* A JSON number that is a whole count in [0, max] into *out; false otherwise. */
bool		serve_json_count(const lg_json_node *n, double max, long *out);
/* Append n floats to out as base64 of their little-endian bytes (no NUL); false when out of memory. */
bool		serve_floats_b64(lg_buf *out, const float *v, int32_t n);
/*
 * A provider's /embeddings answer for n_inputs inputs: NULL with *out
 * (malloc'd [n_inputs][*n_embd], unit rows when normalize), *n_embd and
 * *n_prompt set; else the wire status with msg (and detail) set.
 */
const char *serve_parse_embeddings(const char *body, size_t len, int n_inputs, bool normalize,
								   float **out, int *n_embd, long *n_prompt, char *msg,
								   size_t msg_size, char *detail, size_t detail_size);

#endif							/* LG_SERVE_VECTORS_H */
