/*
 * gguf.c — reading GGUF files (versions 2 and 3) over a read-only mapping.
 *
 * Everything in the header is validated once, at open, against the size of
 * the file: counts are bounded by the bytes that could hold them before
 * anything is allocated, every length and extent is checked before it is
 * read, and tensor shapes, types and data extents are checked so that users
 * of lg_gguf_tensor can trust nbytes and data.  After a successful open the
 * accessors never fail on the file's content.
 *
 * Layout (little-endian): magic u32, version u32, n_tensors u64, n_kv u64;
 * n_kv pairs {key string, type u32, value}; n_tensors infos {name string,
 * n_dims u32, ne[n_dims] i64, type u32, offset u64}; padding to the
 * alignment; tensor data.  A string is {len u64, bytes}; an array value is
 * {elem type u32, n u64, elements}.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The fewest bytes a key/value pair or a tensor info can take, used to bound
 * n_kv and n_tensors by the file size before allocating for them.
 */
#define KV_MIN_BYTES (8 + 1 + 4 + 1)		/* key length, 1-byte key, type, u8 */
#define TENSOR_MIN_BYTES (8 + 1 + 4 + 8 + 4 + 8)	/* name length, 1 byte, n_dims, ne[0], type, offset */
#define HEADER_BYTES (4 + 4 + 8 + 8)

/* ggml stores tensor names in char[64] with the NUL; longer ones cannot load there. */
#define MAX_TENSOR_NAME 64

/* The public struct plus hash indexes for key and tensor lookup. */
typedef struct gguf_impl
{
	lg_gguf		pub;			/* first: lg_gguf pointers are gguf_impl pointers */
	size_t	   *kv_index;		/* open addressing; SIZE_MAX = empty */
	size_t		kv_index_cap;	/* power of two */
	size_t	   *t_index;
	size_t		t_index_cap;
} gguf_impl;

/* A cursor over the bytes being parsed. */
typedef struct reader
{
	const uint8_t *base;
	size_t		size;
	size_t		pos;
	lg_error   *err;
} reader;

size_t
lg_gguf_vtype_size(uint32_t t)
{
	switch (t)
	{
		case LG_GGUF_UINT8:
		case LG_GGUF_INT8:
		case LG_GGUF_BOOL:
			return 1;
		case LG_GGUF_UINT16:
		case LG_GGUF_INT16:
			return 2;
		case LG_GGUF_UINT32:
		case LG_GGUF_INT32:
		case LG_GGUF_FLOAT32:
			return 4;
		case LG_GGUF_UINT64:
		case LG_GGUF_INT64:
		case LG_GGUF_FLOAT64:
			return 8;
		default:
			return 0;
	}
}

/*
 * Copy a name from the file into buf for an error message: printable ASCII
 * only, so a hostile name cannot put control bytes or bad UTF-8 in a
 * message that ends up in a server log.
 */
static const char *
printable(char *buf, size_t bufsize, const char *s, uint64_t len)
{
	size_t		n = 0;

	for (uint64_t i = 0; i < len && n + 4 < bufsize; i++)
	{
		unsigned char c = (unsigned char) s[i];

		buf[n++] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
	}
	if (n + 4 >= bufsize && len > n)
	{
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* Bytes left after the cursor. */
static inline size_t
remaining(const reader *r)
{
	return r->size - r->pos;
}

/* Fail with a truncation message unless n more bytes exist. */
static bool
need(reader *r, uint64_t n, const char *what)
{
	if (n > remaining(r))
	{
		lg_error_set(r->err, LG_ERR_FORMAT,
					 "truncated GGUF file: %s needs %" PRIu64 " bytes at offset %zu, file has %zu",
					 what, n, r->pos, r->size);
		return false;
	}
	return true;
}

/* A little-endian u32; the file format is little-endian whatever the host. */
static inline uint32_t
load_u32(const uint8_t *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* A little-endian u64 as two u32 halves. */
static inline uint64_t
load_u64(const uint8_t *p)
{
	return (uint64_t) load_u32(p) | (uint64_t) load_u32(p + 4) << 32;
}

/* Read a u32 at the cursor. */
static bool
read_u32(reader *r, uint32_t *out, const char *what)
{
	if (!need(r, 4, what))
		return false;
	*out = load_u32(r->base + r->pos);
	r->pos += 4;
	return true;
}

/* Read a u64 at the cursor. */
static bool
read_u64(reader *r, uint64_t *out, const char *what)
{
	if (!need(r, 8, what))
		return false;
	*out = load_u64(r->base + r->pos);
	r->pos += 8;
	return true;
}

/* Read a string (length, then bytes) at the cursor; s points into the buffer. */
static bool
read_str(reader *r, lg_gguf_str *out, const char *what)
{
	uint64_t	len;

	if (!read_u64(r, &len, what))
		return false;
	if (len > remaining(r))
	{
		lg_error_set(r->err, LG_ERR_FORMAT,
					 "%s: string length %" PRIu64 " at offset %zu exceeds the %zu bytes left in the file",
					 what, len, r->pos - 8, remaining(r));
		return false;
	}
	out->s = (const char *) r->base + r->pos;
	out->len = len;
	r->pos += (size_t) len;
	return true;
}

/* FNV-1a: enough to spread GGUF key and tensor names over a table. */
static uint64_t
hash_bytes(const char *s, uint64_t len)
{
	uint64_t	h = 14695981039346656037ULL;

	for (uint64_t i = 0; i < len; i++)
	{
		h ^= (unsigned char) s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* True when two GGUF strings hold the same bytes. */
static inline bool
str_same(lg_gguf_str a, lg_gguf_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.s, b.s, (size_t) a.len) == 0);
}

/* A table of at least twice n slots, all empty; NULL when out of memory. */
static size_t *
index_new(size_t n, size_t *cap)
{
	size_t		c = 8;
	size_t	   *t;

	while (c < n * 2)
		c <<= 1;
	t = malloc(c * sizeof(size_t));
	if (t == NULL)
		return NULL;
	memset(t, 0xff, c * sizeof(size_t));	/* every slot SIZE_MAX */
	*cap = c;
	return t;
}

/*
 * Insert entry i (called name) into the table; returns the index of an
 * earlier entry with the same name, which is left in place, or SIZE_MAX.
 */
static size_t
index_insert(size_t *tab, size_t cap, lg_gguf_str name, size_t i,
			 const lg_gguf_str *(*name_of) (const lg_gguf *, size_t), const lg_gguf *g)
{
	size_t		slot = (size_t) hash_bytes(name.s, name.len) & (cap - 1);

	while (tab[slot] != SIZE_MAX)
	{
		if (str_same(*name_of(g, tab[slot]), name))
			return tab[slot];
		slot = (slot + 1) & (cap - 1);
	}
	tab[slot] = i;
	return SIZE_MAX;
}

/* Position of the entry named name in the table, or SIZE_MAX. */
static size_t
index_lookup(const size_t *tab, size_t cap, const char *name,
			 const lg_gguf_str *(*name_of) (const lg_gguf *, size_t), const lg_gguf *g)
{
	size_t		len = strlen(name);
	lg_gguf_str key = {name, len};
	size_t		slot;

	if (tab == NULL)
		return SIZE_MAX;
	slot = (size_t) hash_bytes(name, len) & (cap - 1);
	while (tab[slot] != SIZE_MAX)
	{
		if (str_same(*name_of(g, tab[slot]), key))
			return tab[slot];
		slot = (slot + 1) & (cap - 1);
	}
	return SIZE_MAX;
}

/* Name of pair i, for the index functions. */
static const lg_gguf_str *
kv_name(const lg_gguf *g, size_t i)
{
	return &g->kv[i].key;
}

/* Name of tensor i, for the index functions. */
static const lg_gguf_str *
tensor_name(const lg_gguf *g, size_t i)
{
	return &g->tensors[i].name;
}

/* Read one key/value pair into kv; every length checked against the file. */
static bool
parse_kv(reader *r, lg_gguf_kv *kv, uint64_t idx)
{
	char		what[128];
	char		name[80];
	uint32_t	type;
	size_t		sz;

	snprintf(what, sizeof(what), "key %" PRIu64, idx);
	if (!read_str(r, &kv->key, what))
		return false;
	if (kv->key.len == 0)
		return lg_error_set(r->err, LG_ERR_FORMAT, "key %" PRIu64 " is empty", idx), false;
	printable(name, sizeof(name), kv->key.s, kv->key.len);
	snprintf(what, sizeof(what), "value of key '%s'", name);
	if (!read_u32(r, &type, what))
		return false;
	if (type >= LG_GGUF_VTYPE_COUNT)
		return lg_error_set(r->err, LG_ERR_FORMAT,
							"key '%s' has invalid value type %" PRIu32, name, type), false;
	kv->type = (lg_gguf_vtype) type;

	if (type == LG_GGUF_STRING)
		return read_str(r, &kv->val.str, what);

	if (type == LG_GGUF_ARRAY)
	{
		uint32_t	elem;
		uint64_t	n;

		if (!read_u32(r, &elem, what))
			return false;
		if (elem >= LG_GGUF_VTYPE_COUNT)
			return lg_error_set(r->err, LG_ERR_FORMAT,
								"key '%s' is an array of invalid value type %" PRIu32, name, elem), false;
		if (elem == LG_GGUF_ARRAY)
			return lg_error_set(r->err, LG_ERR_FORMAT,
								"key '%s' is an array of arrays, which GGUF does not allow", name), false;
		if (!read_u64(r, &n, what))
			return false;
		kv->arr_type = (lg_gguf_vtype) elem;
		kv->arr_n = n;
		kv->arr_data = r->base + r->pos;
		if (elem == LG_GGUF_STRING)
		{
			/* each string takes at least its 8-byte length: bound n before allocating */
			if (n > remaining(r) / 8)
				return lg_error_set(r->err, LG_ERR_FORMAT,
									"key '%s': array of %" PRIu64 " strings cannot fit in the %zu bytes left in the file",
									name, n, remaining(r)), false;
			if (n > 0)
			{
				kv->arr_strs = malloc((size_t) n * sizeof(lg_gguf_str));
				if (kv->arr_strs == NULL)
					return lg_error_set(r->err, LG_ERR_NOMEM,
										"out of memory for %" PRIu64 " strings of key '%s'", n, name), false;
			}
			for (uint64_t i = 0; i < n; i++)
			{
				snprintf(what, sizeof(what), "string %" PRIu64 " of key '%s'", i, name);
				if (!read_str(r, &kv->arr_strs[i], what))
					return false;
			}
			return true;
		}
		sz = lg_gguf_vtype_size(elem);
		if (n > remaining(r) / sz)
			return lg_error_set(r->err, LG_ERR_FORMAT,
								"key '%s': array of %" PRIu64 " elements of %zu bytes cannot fit in the %zu bytes left in the file",
								name, n, sz, remaining(r)), false;
		r->pos += (size_t) n * sz;
		return true;
	}

	sz = lg_gguf_vtype_size(type);
	if (!need(r, sz, what))
		return false;
	{
		const uint8_t *p = r->base + r->pos;

		switch (type)
		{
			case LG_GGUF_UINT8:
			case LG_GGUF_BOOL:
				kv->val.u64 = p[0];
				break;
			case LG_GGUF_INT8:
				kv->val.i64 = (int8_t) p[0];
				break;
			case LG_GGUF_UINT16:
				kv->val.u64 = (uint16_t) (p[0] | p[1] << 8);
				break;
			case LG_GGUF_INT16:
				kv->val.i64 = (int16_t) (uint16_t) (p[0] | p[1] << 8);
				break;
			case LG_GGUF_UINT32:
				kv->val.u64 = load_u32(p);
				break;
			case LG_GGUF_INT32:
				kv->val.i64 = (int32_t) load_u32(p);
				break;
			case LG_GGUF_UINT64:
				kv->val.u64 = load_u64(p);
				break;
			case LG_GGUF_INT64:
				kv->val.i64 = (int64_t) load_u64(p);
				break;
			case LG_GGUF_FLOAT32:
				{
					uint32_t	u = load_u32(p);
					float		f;

					memcpy(&f, &u, sizeof(f));
					kv->val.f64 = f;
					break;
				}
			case LG_GGUF_FLOAT64:
				{
					uint64_t	u = load_u64(p);

					memcpy(&kv->val.f64, &u, sizeof(double));
					break;
				}
		}
	}
	r->pos += sz;
	return true;
}

/*
 * Read one tensor info: name, shape, type and offset, with the shape and
 * type checked so that nbytes is exact and cannot overflow.
 */
static bool
parse_tensor_info(reader *r, lg_gguf_tensor *t, uint64_t idx, uint32_t alignment)
{
	char		what[128];
	char		name[80];
	uint32_t	n_dims;
	uint32_t	type;
	const lg_type_info *ti;
	uint64_t	nelem = 1;
	uint64_t	nbytes;

	snprintf(what, sizeof(what), "name of tensor %" PRIu64, idx);
	if (!read_str(r, &t->name, what))
		return false;
	printable(name, sizeof(name), t->name.s, t->name.len);
	if (t->name.len >= MAX_TENSOR_NAME)
		return lg_error_set(r->err, LG_ERR_FORMAT,
							"tensor %" PRIu64 " ('%s') has a name of %" PRIu64 " bytes; at most %d are allowed",
							idx, name, t->name.len, MAX_TENSOR_NAME - 1), false;
	snprintf(what, sizeof(what), "info of tensor '%s'", name);
	if (!read_u32(r, &n_dims, what))
		return false;
	if (n_dims < 1 || n_dims > LG_GGUF_MAX_DIMS)
		return lg_error_set(r->err, LG_ERR_FORMAT,
							"tensor '%s' has %" PRIu32 " dimensions; 1 to %d are allowed",
							name, n_dims, LG_GGUF_MAX_DIMS), false;
	t->n_dims = n_dims;
	for (uint32_t d = 0; d < LG_GGUF_MAX_DIMS; d++)
	{
		uint64_t	v = 1;

		if (d < n_dims && !read_u64(r, &v, what))
			return false;
		if (v > (uint64_t) INT64_MAX)
			return lg_error_set(r->err, LG_ERR_FORMAT,
								"tensor '%s' dimension %" PRIu32 " is negative (%" PRId64 ")",
								name, d, (int64_t) v), false;
		t->ne[d] = (int64_t) v;
	}
	if (!read_u32(r, &type, what))
		return false;
	if (!lg_type_valid(type))
		return lg_error_set(r->err, LG_ERR_FORMAT,
							"tensor '%s' has unknown type %" PRIu32, name, type), false;
	t->type = (lg_type) type;
	ti = lg_type_get(type);
	if (t->ne[0] % ti->block_size != 0)
		return lg_error_set(r->err, LG_ERR_FORMAT,
							"tensor '%s' of type %s has rows of %" PRId64 " values, not a multiple of the block size %d",
							name, ti->name, t->ne[0], ti->block_size), false;
	for (uint32_t d = 0; d < LG_GGUF_MAX_DIMS; d++)
	{
		uint64_t	v = (uint64_t) t->ne[d];

		if (v != 0 && nelem > (uint64_t) INT64_MAX / v)
			return lg_error_set(r->err, LG_ERR_FORMAT,
								"tensor '%s' has too many elements (%" PRId64 " x %" PRId64 " x %" PRId64 " x %" PRId64 ")",
								name, t->ne[0], t->ne[1], t->ne[2], t->ne[3]), false;
		nelem *= v;
	}
	if (nelem == 0)
		nbytes = 0;
	else
	{
		uint64_t	blocks = nelem / (uint64_t) ti->block_size;

		if (blocks > SIZE_MAX / ti->type_size)
			return lg_error_set(r->err, LG_ERR_FORMAT,
								"tensor '%s' is too large to address", name), false;
		nbytes = blocks * ti->type_size;
	}
	t->nbytes = (size_t) nbytes;
	if (!read_u64(r, &t->offset, what))
		return false;
	if (t->offset % alignment != 0)
		return lg_error_set(r->err, LG_ERR_FORMAT,
							"tensor '%s' has offset %" PRIu64 ", not a multiple of the alignment %" PRIu32,
							name, t->offset, alignment), false;
	return true;
}

/* Free everything owned by g except the mapping. */
static void
gguf_free_parsed(gguf_impl *gi)
{
	lg_gguf    *g = &gi->pub;

	if (g->kv != NULL)
	{
		for (uint64_t i = 0; i < g->n_kv; i++)
			free(g->kv[i].arr_strs);
		free(g->kv);
	}
	free(g->tensors);
	free(gi->kv_index);
	free(gi->t_index);
	g->kv = NULL;
	g->tensors = NULL;
	gi->kv_index = NULL;
	gi->t_index = NULL;
}

/*
 * Parse and validate the buffer already recorded in gi (base, size).
 * On failure everything allocated here is freed and err is set.
 */
static bool
gguf_parse(gguf_impl *gi, lg_error *err)
{
	lg_gguf    *g = &gi->pub;
	reader		r = {g->base, g->size, 0, err};
	uint32_t	magic;
	uint64_t	n_tensors;
	uint64_t	n_kv;
	char		name[80];
	int64_t		ai;
	uint64_t	header_end;

	if (g->size < 4)
		return lg_error_set(err, LG_ERR_FORMAT,
							"not a GGUF file: %zu bytes is too short to hold the magic", g->size), false;
	magic = load_u32(g->base);
	if (magic != LG_GGUF_MAGIC)
	{
		char		m[8];

		return lg_error_set(err, LG_ERR_FORMAT, "not a GGUF file: magic is '%s', expected 'GGUF'",
							printable(m, sizeof(m), (const char *) g->base, 4)), false;
	}
	r.pos = 4;
	if (!read_u32(&r, &g->version, "version"))
		return false;
	if (g->version == 0)
		return lg_error_set(err, LG_ERR_FORMAT, "invalid GGUF version 0"), false;
	/* GGUF has no byte-order mark; a byte-swapped small version is the tell */
	if ((g->version & 0xffff) == 0)
		return lg_error_set(err, LG_ERR_UNSUPPORTED,
							"big-endian GGUF files are not supported (version field reads 0x%08" PRIx32 ")",
							g->version), false;
	if (g->version == 1)
		return lg_error_set(err, LG_ERR_UNSUPPORTED,
							"GGUF version 1 is not supported; convert the model again with a current llama.cpp"), false;
	/* a plausible future version is "not supported"; anything else is a corrupt header */
	if (g->version > 255)
		return lg_error_set(err, LG_ERR_FORMAT,
							"invalid GGUF version %" PRIu32 " (versions 2 and 3 are supported)", g->version), false;
	if (g->version > 3)
		return lg_error_set(err, LG_ERR_UNSUPPORTED,
							"GGUF version %" PRIu32 " is not supported (versions 2 and 3 are)", g->version), false;
	if (!read_u64(&r, &n_tensors, "tensor count") || !read_u64(&r, &n_kv, "key/value count"))
		return false;

	/* bound the counts by the bytes that could hold them, before allocating */
	if (n_kv > remaining(&r) / KV_MIN_BYTES)
		return lg_error_set(err, LG_ERR_FORMAT,
							"key/value count %" PRIu64 " cannot fit in a file of %zu bytes", n_kv, g->size), false;
	if (n_tensors > remaining(&r) / TENSOR_MIN_BYTES ||
		n_kv * KV_MIN_BYTES + n_tensors * TENSOR_MIN_BYTES > remaining(&r))
		return lg_error_set(err, LG_ERR_FORMAT,
							"tensor count %" PRIu64 " cannot fit in a file of %zu bytes", n_tensors, g->size), false;

	if (n_kv > 0)
	{
		g->kv = calloc((size_t) n_kv, sizeof(lg_gguf_kv));
		gi->kv_index = index_new((size_t) n_kv, &gi->kv_index_cap);
		if (g->kv == NULL || gi->kv_index == NULL)
			goto nomem;
	}
	g->n_kv = n_kv;
	for (uint64_t i = 0; i < n_kv; i++)
	{
		size_t		dup;

		if (!parse_kv(&r, &g->kv[i], i))
			goto fail;
		dup = index_insert(gi->kv_index, gi->kv_index_cap, g->kv[i].key, (size_t) i, kv_name, g);
		if (dup != SIZE_MAX)
		{
			lg_error_set(err, LG_ERR_FORMAT, "duplicate key '%s' (pairs %zu and %" PRIu64 ")",
						 printable(name, sizeof(name), g->kv[i].key.s, g->kv[i].key.len), dup, i);
			goto fail;
		}
	}

	g->alignment = LG_GGUF_DEFAULT_ALIGNMENT;
	ai = lg_gguf_find_key(g, "general.alignment");
	if (ai >= 0)
	{
		const lg_gguf_kv *kv = &g->kv[ai];

		if (kv->type != LG_GGUF_UINT32)
		{
			lg_error_set(err, LG_ERR_FORMAT, "general.alignment must be a uint32, not value type %d",
						 (int) kv->type);
			goto fail;
		}
		if (kv->val.u64 == 0 || (kv->val.u64 & (kv->val.u64 - 1)) != 0)
		{
			lg_error_set(err, LG_ERR_FORMAT, "general.alignment %" PRIu64 " is not a power of two",
						 kv->val.u64);
			goto fail;
		}
		g->alignment = (uint32_t) kv->val.u64;
	}

	if (n_tensors > 0)
	{
		g->tensors = calloc((size_t) n_tensors, sizeof(lg_gguf_tensor));
		gi->t_index = index_new((size_t) n_tensors, &gi->t_index_cap);
		if (g->tensors == NULL || gi->t_index == NULL)
			goto nomem;
	}
	g->n_tensors = n_tensors;
	for (uint64_t i = 0; i < n_tensors; i++)
	{
		size_t		dup;

		if (!parse_tensor_info(&r, &g->tensors[i], i, g->alignment))
			goto fail;
		dup = index_insert(gi->t_index, gi->t_index_cap, g->tensors[i].name, (size_t) i, tensor_name, g);
		if (dup != SIZE_MAX)
		{
			lg_error_set(err, LG_ERR_FORMAT, "duplicate tensor name '%s' (tensors %zu and %" PRIu64 ")",
						 printable(name, sizeof(name), g->tensors[i].name.s, g->tensors[i].name.len),
						 dup, i);
			goto fail;
		}
	}

	/* the data section starts at the end of the header rounded up to the alignment */
	header_end = r.pos;
	g->data_offset = (header_end + g->alignment - 1) / g->alignment * g->alignment;
	for (uint64_t i = 0; i < n_tensors; i++)
	{
		lg_gguf_tensor *t = &g->tensors[i];
		uint64_t	avail = g->data_offset <= g->size ? g->size - g->data_offset : 0;

		if (g->data_offset > g->size || t->offset > avail || t->nbytes > avail - t->offset)
		{
			uint64_t	at = t->offset > UINT64_MAX - g->data_offset ?
				UINT64_MAX : g->data_offset + t->offset;

			lg_error_set(err, LG_ERR_FORMAT,
						 "tensor '%s' extends past end of file (needs %zu bytes at offset %" PRIu64 ", file has %zu)",
						 printable(name, sizeof(name), t->name.s, t->name.len),
						 t->nbytes, at, g->size);
			goto fail;
		}
		t->data = g->base + g->data_offset + t->offset;
		if ((uintptr_t) t->data % lg_type_alignment(t->type) != 0)
		{
			lg_error_set(err, LG_ERR_FORMAT,
						 "tensor '%s' data at file offset %" PRIu64 " is not aligned to the %zu bytes type %s needs (general.alignment is %" PRIu32 ")",
						 printable(name, sizeof(name), t->name.s, t->name.len),
						 g->data_offset + t->offset, lg_type_alignment(t->type),
						 lg_type_get(t->type)->name, g->alignment);
			goto fail;
		}
	}
	return true;

nomem:
	lg_error_set(err, LG_ERR_NOMEM, "out of memory for the index of %" PRIu64 " keys and %" PRIu64 " tensors",
				 n_kv, n_tensors);
fail:
	gguf_free_parsed(gi);
	g->n_kv = 0;
	g->n_tensors = 0;
	return false;
}

/* Validate a caller-owned buffer; it must outlive the returned handle. */
lg_gguf *
lg_gguf_open_buffer(const void *buf, size_t len, lg_error *err)
{
	gguf_impl  *gi;

	if (buf == NULL && len > 0)
	{
		lg_error_set(err, LG_ERR_ARG, "NULL buffer of %zu bytes", len);
		return NULL;
	}
	gi = calloc(1, sizeof(gguf_impl));
	if (gi == NULL)
	{
		lg_error_set(err, LG_ERR_NOMEM, "out of memory opening a GGUF buffer");
		return NULL;
	}
	gi->pub.base = buf;
	gi->pub.size = len;
	gi->pub.mapped = false;
	if (!gguf_parse(gi, err))
	{
		free(gi);
		return NULL;
	}
	return &gi->pub;
}

/* Map a file read-only and validate it; the mapping lives until lg_gguf_close. */
lg_gguf *
lg_gguf_open(const char *path, lg_error *err)
{
	int			fd;
	struct stat st;
	void	   *map;
	gguf_impl  *gi;
	char		msg[LG_ERROR_MSG_LEN];

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		lg_error_set(err, LG_ERR_IO, "cannot open \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0)
	{
		lg_error_set(err, LG_ERR_IO, "cannot stat \"%s\": %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode))
	{
		lg_error_set(err, LG_ERR_IO, "\"%s\" is not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_size < HEADER_BYTES)
	{
		lg_error_set(err, LG_ERR_FORMAT, "\"%s\" is not a GGUF file: %lld bytes is too short",
					 path, (long long) st.st_size);
		close(fd);
		return NULL;
	}
	if ((uint64_t) st.st_size > SIZE_MAX)
	{
		lg_error_set(err, LG_ERR_IO, "\"%s\" is too large to map", path);
		close(fd);
		return NULL;
	}
	map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);					/* the mapping keeps the file */
	if (map == MAP_FAILED)
	{
		lg_error_set(err, LG_ERR_IO, "cannot map \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	gi = calloc(1, sizeof(gguf_impl));
	if (gi == NULL)
	{
		munmap(map, (size_t) st.st_size);
		lg_error_set(err, LG_ERR_NOMEM, "out of memory opening \"%s\"", path);
		return NULL;
	}
	gi->pub.base = map;
	gi->pub.size = (size_t) st.st_size;
	gi->pub.mapped = true;
	if (!gguf_parse(gi, err))
	{
		/* name the file in the message: the parser does not know it */
		if (err != NULL)
		{
			memcpy(msg, err->msg, sizeof(msg));
			lg_error_set(err, err->status, "%s: %.400s", path, msg);
		}
		munmap(map, (size_t) st.st_size);
		free(gi);
		return NULL;
	}
	return &gi->pub;
}

/* Release the handle, its tables and (for files) the mapping. */
void
lg_gguf_close(lg_gguf *g)
{
	gguf_impl  *gi = (gguf_impl *) g;

	if (g == NULL)
		return;
	gguf_free_parsed(gi);
	if (g->mapped && g->base != NULL)
		munmap((void *) g->base, g->size);
	free(gi);
}

/* Index of key, or -1. */
int64_t
lg_gguf_find_key(const lg_gguf *g, const char *key)
{
	const gguf_impl *gi = (const gguf_impl *) g;
	size_t		i;

	if (g == NULL || key == NULL)
		return -1;
	i = index_lookup(gi->kv_index, gi->kv_index_cap, key, kv_name, g);
	return i == SIZE_MAX ? -1 : (int64_t) i;
}

/* The pair for key, or NULL. */
const lg_gguf_kv *
lg_gguf_get(const lg_gguf *g, const char *key)
{
	int64_t		i = lg_gguf_find_key(g, key);

	return i < 0 ? NULL : &g->kv[i];
}

/*
 * An integer value of any width: *neg and *s for negative signed values,
 * otherwise *u.  False for types that are not integers (bool included).
 */
static bool
kv_integer(const lg_gguf_kv *kv, bool *neg, uint64_t *u, int64_t *s)
{
	switch (kv->type)
	{
		case LG_GGUF_UINT8:
		case LG_GGUF_UINT16:
		case LG_GGUF_UINT32:
		case LG_GGUF_UINT64:
			*neg = false;
			*u = kv->val.u64;
			return true;
		case LG_GGUF_INT8:
		case LG_GGUF_INT16:
		case LG_GGUF_INT32:
		case LG_GGUF_INT64:
			*neg = kv->val.i64 < 0;
			*s = kv->val.i64;
			*u = *neg ? 0 : (uint64_t) kv->val.i64;
			return true;
		default:
			return false;
	}
}

/* Any integer in [0, UINT32_MAX]. */
bool
lg_gguf_get_u32(const lg_gguf *g, const char *key, uint32_t *out)
{
	const lg_gguf_kv *kv = lg_gguf_get(g, key);
	bool		neg;
	uint64_t	u;
	int64_t		s = 0;

	if (kv == NULL || !kv_integer(kv, &neg, &u, &s) || neg || u > UINT32_MAX)
		return false;
	*out = (uint32_t) u;
	return true;
}

/* Any integer in [INT64_MIN, INT64_MAX]. */
bool
lg_gguf_get_i64(const lg_gguf *g, const char *key, int64_t *out)
{
	const lg_gguf_kv *kv = lg_gguf_get(g, key);
	bool		neg;
	uint64_t	u;
	int64_t		s = 0;

	if (kv == NULL || !kv_integer(kv, &neg, &u, &s))
		return false;
	if (neg)
		*out = s;
	else if (u > (uint64_t) INT64_MAX)
		return false;
	else
		*out = (int64_t) u;
	return true;
}

/*
 * float32 as is; float64 rounded to float when finite in float's range (or
 * not finite to begin with); integers only when float holds them exactly.
 */
bool
lg_gguf_get_f32(const lg_gguf *g, const char *key, float *out)
{
	const lg_gguf_kv *kv = lg_gguf_get(g, key);
	bool		neg;
	uint64_t	u;
	int64_t		s = 0;

	if (kv == NULL)
		return false;
	if (kv->type == LG_GGUF_FLOAT32)
	{
		*out = (float) kv->val.f64;
		return true;
	}
	if (kv->type == LG_GGUF_FLOAT64)
	{
		double		d = kv->val.f64;

		if (isfinite(d) && isinf((float) d))
			return false;
		*out = (float) d;
		return true;
	}
	if (kv_integer(kv, &neg, &u, &s))
	{
		/* |v| <= 2^24 is always exact; larger values only when representable */
		if (neg)
		{
			float		f = (float) s;

			if (s < -((int64_t) 1 << 53) || (double) f != (double) s)
				return false;
			*out = f;
		}
		else
		{
			float		f = (float) u;

			if (u > (uint64_t) 1 << 53 || (double) f != (double) u)
				return false;
			*out = f;
		}
		return true;
	}
	return false;
}

/* A bool value only. */
bool
lg_gguf_get_bool(const lg_gguf *g, const char *key, bool *out)
{
	const lg_gguf_kv *kv = lg_gguf_get(g, key);

	if (kv == NULL || kv->type != LG_GGUF_BOOL)
		return false;
	*out = kv->val.u64 != 0;
	return true;
}

/* A string value only; it points into the mapping. */
bool
lg_gguf_get_str(const lg_gguf *g, const char *key, lg_gguf_str *out)
{
	const lg_gguf_kv *kv = lg_gguf_get(g, key);

	if (kv == NULL || kv->type != LG_GGUF_STRING)
		return false;
	*out = kv->val.str;
	return true;
}

/* A string value copied as a C string, truncated to bufsize - 1 bytes. */
bool
lg_gguf_get_cstr(const lg_gguf *g, const char *key, char *buf, size_t bufsize)
{
	lg_gguf_str s;
	size_t		n;

	if (buf == NULL || bufsize == 0 || !lg_gguf_get_str(g, key, &s))
		return false;
	n = s.len < bufsize - 1 ? (size_t) s.len : bufsize - 1;
	if (n > 0)
		memcpy(buf, s.s, n);
	buf[n] = '\0';
	return true;
}

/* An array's element type and count. */
bool
lg_gguf_get_arr(const lg_gguf *g, const char *key, lg_gguf_vtype *type, uint64_t *n)
{
	const lg_gguf_kv *kv = lg_gguf_get(g, key);

	if (kv == NULL || kv->type != LG_GGUF_ARRAY)
		return false;
	if (type != NULL)
		*type = kv->arr_type;
	if (n != NULL)
		*n = kv->arr_n;
	return true;
}

/* Byte equality of a file string with a C string. */
bool
lg_gguf_str_eq(lg_gguf_str a, const char *b)
{
	size_t		len = strlen(b);

	return a.len == len && (len == 0 || memcmp(a.s, b, len) == 0);
}

/* The tensor called name, or NULL. */
const lg_gguf_tensor *
lg_gguf_find_tensor(const lg_gguf *g, const char *name)
{
	const gguf_impl *gi = (const gguf_impl *) g;
	size_t		i;

	if (g == NULL || name == NULL)
		return NULL;
	i = index_lookup(gi->t_index, gi->t_index_cap, name, tensor_name, g);
	return i == SIZE_MAX ? NULL : &g->tensors[i];
}
