/*
 * serve_embed_fields.h — an EMBED request's fields as options
 * (serve_embed_fields.c); no model or scheduler needed.
 */
#ifndef LG_SERVE_EMBED_FIELDS_H
#define LG_SERVE_EMBED_FIELDS_H

#include <limits.h>

#include "embed.h"
#include "serve.h"

typedef struct serve_embed_opts
{
	lg_pooling	pool;			/* LG_POOL_DEFAULT: the model's */
	bool		normalize;		/* default true */
	bool		truncate;
	long long	priority;		/* -1000000 .. 1000000 */
	long long	base;			/* the number of the first input in messages (input_base, default 1) */
	long long	n_ctx;			/* 0: the scheduler's */
	int32_t		n_inputs;		/* the "input" fields, at least one */
} serve_embed_opts;

/* EMBED's fields into *o; false with msg set (the wire status is arg). */
bool		serve_embed_fields(const serve_fields *f, serve_embed_opts *o, char *msg, size_t msg_size);

#endif							/* LG_SERVE_EMBED_FIELDS_H */
