/*
 * gguf_write.c — writing GGUF version 3 files: key/value pairs, tensor
 * infos, then the tensor data, each tensor aligned.
 *
 * Values are serialized into the writer as they are added (so a copied
 * vocabulary does not depend on the source file staying open); tensor data
 * is copied once.  Errors in the add_* calls are returned and also kept, so
 * lg_gguf_writer_write reports the first one even when a caller did not
 * check.  The file is written to "<path>.tmp" and renamed into place, so a
 * failed or interrupted write never leaves a truncated model at path.
 */
#include "gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ggml keeps tensor names in char[64] including the NUL. */
#define MAX_TENSOR_NAME 64

/* One key/value pair: the value's bytes as they go in the file after the type. */
typedef struct wkv
{
	char	   *key;
	size_t		key_len;
	uint32_t	type;
	uint8_t    *val;
	size_t		val_len;
} wkv;

/* One tensor; data owned. */
typedef struct wtensor
{
	char	   *name;
	size_t		name_len;
	lg_type		type;
	uint32_t	n_dims;
	int64_t		ne[LG_GGUF_MAX_DIMS];
	void	   *data;
	size_t		nbytes;
} wtensor;

struct lg_gguf_writer
{
	wkv		   *kv;
	size_t		n_kv;
	size_t		cap_kv;
	wtensor    *t;
	size_t		n_t;
	size_t		cap_t;
	uint32_t	alignment;
	lg_error	first_err;		/* status LG_OK until an add fails */
};

/* A growable byte buffer for serializing one value. */
typedef struct bytes
{
	uint8_t    *p;
	size_t		len;
	size_t		cap;
	bool		oom;
} bytes;

/* Append n bytes; on allocation failure remember it and drop the data. */
static void
bytes_put(bytes *b, const void *src, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (n > SIZE_MAX - b->len)
	{
		b->oom = true;
		return;
	}
	if (b->len + n > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 64;
		uint8_t    *p;

		while (cap < b->len + n)
			cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
		p = realloc(b->p, cap);
		if (p == NULL)
		{
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

/* A little-endian u32, whatever the host. */
static void
bytes_u32(bytes *b, uint32_t v)
{
	uint8_t		le[4] = {(uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16), (uint8_t) (v >> 24)};

	bytes_put(b, le, 4);
}

/* A little-endian u64. */
static void
bytes_u64(bytes *b, uint64_t v)
{
	bytes_u32(b, (uint32_t) v);
	bytes_u32(b, (uint32_t) (v >> 32));
}

/* A GGUF string: u64 length, then the bytes. */
static void
bytes_str(bytes *b, const char *s, uint64_t len)
{
	bytes_u64(b, len);
	bytes_put(b, s, (size_t) len);
}

/* Record the writer's first error and return status. */
static lg_status
writer_fail(lg_gguf_writer *w, lg_status status, const char *fmt, const char *name)
{
	if (w != NULL && w->first_err.status == LG_OK)
		lg_error_set(&w->first_err, status, fmt, name);
	return status;
}

/* A new, empty writer (alignment 32). */
lg_gguf_writer *
lg_gguf_writer_new(void)
{
	lg_gguf_writer *w = calloc(1, sizeof(lg_gguf_writer));

	if (w == NULL)
		return NULL;
	w->alignment = LG_GGUF_DEFAULT_ALIGNMENT;
	lg_error_clear(&w->first_err);
	return w;
}

/* Free the writer and every copy it holds. */
void
lg_gguf_writer_free(lg_gguf_writer *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n_kv; i++)
	{
		free(w->kv[i].key);
		free(w->kv[i].val);
	}
	for (size_t i = 0; i < w->n_t; i++)
	{
		free(w->t[i].name);
		free(w->t[i].data);
	}
	free(w->kv);
	free(w->t);
	free(w);
}

/* Set the data alignment; it is written as general.alignment unless 32. */
void
lg_gguf_writer_set_alignment(lg_gguf_writer *w, uint32_t alignment)
{
	if (w == NULL)
		return;
	if (alignment == 0 || (alignment & (alignment - 1)) != 0)
	{
		char		num[16];

		snprintf(num, sizeof(num), "%" PRIu32, alignment);
		writer_fail(w, LG_ERR_ARG, "alignment %s is not a power of two", num);
		return;
	}
	w->alignment = alignment;
}

/*
 * Add a key with its serialized value (val, taken over by the writer).
 * general.alignment also sets the writer's alignment, so a copied header
 * and the data layout cannot disagree.
 */
static lg_status
add_kv(lg_gguf_writer *w, const char *key, size_t key_len, const char *msgkey,
	   uint32_t type, bytes *val)
{
	wkv		   *kv;

	if (val->oom)
	{
		free(val->p);
		return writer_fail(w, LG_ERR_NOMEM, "out of memory for the value of key '%s'", msgkey);
	}
	if (key_len == 0)
	{
		free(val->p);
		return writer_fail(w, LG_ERR_ARG, "empty key%s", "");
	}
	for (size_t i = 0; i < w->n_kv; i++)
	{
		if (w->kv[i].key_len == key_len && memcmp(w->kv[i].key, key, key_len) == 0)
		{
			free(val->p);
			return writer_fail(w, LG_ERR_ARG, "duplicate key '%s'", msgkey);
		}
	}
	if (key_len == strlen("general.alignment") && memcmp(key, "general.alignment", key_len) == 0)
	{
		uint32_t	a;

		if (type != LG_GGUF_UINT32 || val->len != 4)
		{
			free(val->p);
			return writer_fail(w, LG_ERR_ARG, "key '%s' must be a uint32", msgkey);
		}
		a = (uint32_t) val->p[0] | (uint32_t) val->p[1] << 8 |
			(uint32_t) val->p[2] << 16 | (uint32_t) val->p[3] << 24;
		if (a == 0 || (a & (a - 1)) != 0)
		{
			free(val->p);
			return writer_fail(w, LG_ERR_ARG, "key '%s' is not a power of two", msgkey);
		}
		w->alignment = a;
	}
	if (w->n_kv == w->cap_kv)
	{
		size_t		cap = w->cap_kv ? w->cap_kv * 2 : 32;
		wkv		   *p = realloc(w->kv, cap * sizeof(wkv));

		if (p == NULL)
		{
			free(val->p);
			return writer_fail(w, LG_ERR_NOMEM, "out of memory adding key '%s'", msgkey);
		}
		w->kv = p;
		w->cap_kv = cap;
	}
	kv = &w->kv[w->n_kv];
	kv->key = malloc(key_len + 1);
	if (kv->key == NULL)
	{
		free(val->p);
		return writer_fail(w, LG_ERR_NOMEM, "out of memory adding key '%s'", msgkey);
	}
	memcpy(kv->key, key, key_len);
	kv->key[key_len] = '\0';
	kv->key_len = key_len;
	kv->type = type;
	kv->val = val->p;
	kv->val_len = val->len;
	w->n_kv++;
	return LG_OK;
}

/*
 * Add a scalar of any non-string type; val points to a host value of that
 * type (uint8_t, int16_t, float, double, bool as one byte, …).
 */
lg_status
lg_gguf_writer_add_val(lg_gguf_writer *w, const char *key, lg_gguf_vtype type, const void *val)
{
	bytes		b = {0};
	size_t		sz = lg_gguf_vtype_size(type);
	uint8_t		le[8];

	if (w == NULL || key == NULL || val == NULL)
		return LG_ERR_ARG;
	if (sz == 0)
		return writer_fail(w, LG_ERR_ARG, "key '%s': not a scalar value type", key);
	/* host values are little-endian, as GGUF is */
	if (type == LG_GGUF_BOOL)
		le[0] = *(const bool *) val ? 1 : 0;
	else
		memcpy(le, val, sz);
	bytes_put(&b, le, sz);
	return add_kv(w, key, strlen(key), key, type, &b);
}

/* Typed shorthands for lg_gguf_writer_add_val. */
lg_status
lg_gguf_writer_add_u32(lg_gguf_writer *w, const char *key, uint32_t v)
{
	return lg_gguf_writer_add_val(w, key, LG_GGUF_UINT32, &v);
}

lg_status
lg_gguf_writer_add_i32(lg_gguf_writer *w, const char *key, int32_t v)
{
	return lg_gguf_writer_add_val(w, key, LG_GGUF_INT32, &v);
}

lg_status
lg_gguf_writer_add_f32(lg_gguf_writer *w, const char *key, float v)
{
	return lg_gguf_writer_add_val(w, key, LG_GGUF_FLOAT32, &v);
}

lg_status
lg_gguf_writer_add_bool(lg_gguf_writer *w, const char *key, bool v)
{
	return lg_gguf_writer_add_val(w, key, LG_GGUF_BOOL, &v);
}

/* A string value (C string; use add_arr_str for strings with NULs). */
lg_status
lg_gguf_writer_add_str(lg_gguf_writer *w, const char *key, const char *v)
{
	bytes		b = {0};

	if (w == NULL || key == NULL || v == NULL)
		return LG_ERR_ARG;
	bytes_str(&b, v, strlen(v));
	return add_kv(w, key, strlen(key), key, LG_GGUF_STRING, &b);
}

/* An array of n scalars of elem_type, given as a host array. */
lg_status
lg_gguf_writer_add_arr(lg_gguf_writer *w, const char *key, lg_gguf_vtype elem_type,
					   const void *data, uint64_t n)
{
	bytes		b = {0};
	size_t		sz = lg_gguf_vtype_size(elem_type);

	if (w == NULL || key == NULL || (data == NULL && n > 0))
		return LG_ERR_ARG;
	if (sz == 0)
		return writer_fail(w, LG_ERR_ARG,
						   "key '%s': arrays of strings go through add_arr_str; arrays of arrays are not allowed",
						   key);
	if (n > SIZE_MAX / sz)
		return writer_fail(w, LG_ERR_ARG, "key '%s': array too large", key);
	bytes_u32(&b, elem_type);
	bytes_u64(&b, n);
	if (elem_type == LG_GGUF_BOOL)
	{
		for (uint64_t i = 0; i < n; i++)
		{
			uint8_t		v = ((const bool *) data)[i] ? 1 : 0;

			bytes_put(&b, &v, 1);
		}
	}
	else
		bytes_put(&b, data, (size_t) n * sz);	/* GGUF is little-endian, as our hosts are */
	return add_kv(w, key, strlen(key), key, LG_GGUF_ARRAY, &b);
}

/* An array of n strings; lens may be NULL for C strings. */
lg_status
lg_gguf_writer_add_arr_str(lg_gguf_writer *w, const char *key,
						   const char *const *strs, const uint64_t *lens, uint64_t n)
{
	bytes		b = {0};

	if (w == NULL || key == NULL || (strs == NULL && n > 0))
		return LG_ERR_ARG;
	bytes_u32(&b, LG_GGUF_STRING);
	bytes_u64(&b, n);
	for (uint64_t i = 0; i < n && !b.oom; i++)
	{
		uint64_t	len = lens ? lens[i] : strlen(strs[i]);

		if (strs[i] == NULL && len > 0)
		{
			free(b.p);
			return writer_fail(w, LG_ERR_ARG, "key '%s': NULL string in array", key);
		}
		bytes_str(&b, strs[i], len);
	}
	return add_kv(w, key, strlen(key), key, LG_GGUF_ARRAY, &b);
}

/* Copy a pair from an open file, whatever its type. */
lg_status
lg_gguf_writer_copy_kv(lg_gguf_writer *w, const lg_gguf *src, const lg_gguf_kv *kv)
{
	bytes		b = {0};
	char		key[256];
	size_t		sz;

	if (w == NULL || src == NULL || kv == NULL)
		return LG_ERR_ARG;
	/* a C copy of the key for messages only; the real key may hold any bytes */
	snprintf(key, sizeof(key), "%.*s", (int) (kv->key.len < 255 ? kv->key.len : 255), kv->key.s);
	switch (kv->type)
	{
		case LG_GGUF_STRING:
			bytes_str(&b, kv->val.str.s, kv->val.str.len);
			break;
		case LG_GGUF_ARRAY:
			bytes_u32(&b, kv->arr_type);
			bytes_u64(&b, kv->arr_n);
			if (kv->arr_type == LG_GGUF_STRING)
			{
				for (uint64_t i = 0; i < kv->arr_n && !b.oom; i++)
					bytes_str(&b, kv->arr_strs[i].s, kv->arr_strs[i].len);
			}
			else
			{
				sz = lg_gguf_vtype_size(kv->arr_type);
				if (sz == 0 || kv->arr_n > SIZE_MAX / sz)
					return writer_fail(w, LG_ERR_ARG, "key '%s': bad array", key);
				bytes_put(&b, kv->arr_data, (size_t) kv->arr_n * sz);
			}
			break;
		case LG_GGUF_FLOAT32:
			{
				float		f = (float) kv->val.f64;
				uint32_t	u;

				memcpy(&u, &f, 4);
				bytes_u32(&b, u);
				break;
			}
		case LG_GGUF_FLOAT64:
			{
				uint64_t	u;

				memcpy(&u, &kv->val.f64, 8);
				bytes_u64(&b, u);
				break;
			}
		default:
			sz = lg_gguf_vtype_size(kv->type);
			if (sz == 0)
				return writer_fail(w, LG_ERR_ARG, "key '%s': bad value type", key);
			for (size_t i = 0; i < sz; i++)
			{
				uint8_t		v = (uint8_t) (kv->val.u64 >> (8 * i));	/* i64 shares the bits */

				bytes_put(&b, &v, 1);
			}
			break;
	}
	return add_kv(w, kv->key.s, (size_t) kv->key.len, key, kv->type, &b);
}

/* Add a tensor, copying its data (NULL data: zeros). */
lg_status
lg_gguf_writer_add_tensor(lg_gguf_writer *w, const char *name, lg_type type,
						  uint32_t n_dims, const int64_t *ne, const void *data)
{
	const lg_type_info *ti = lg_type_get((uint32_t) type);
	size_t		name_len;
	size_t		row;
	uint64_t	rows = 1;
	uint64_t	nbytes;
	wtensor    *t;

	if (w == NULL || name == NULL || ne == NULL)
		return LG_ERR_ARG;
	name_len = strlen(name);
	if (name_len == 0 || name_len >= MAX_TENSOR_NAME)
		return writer_fail(w, LG_ERR_ARG, "tensor name '%s' is empty or longer than 63 bytes", name);
	if (ti->block_size == 0)
		return writer_fail(w, LG_ERR_ARG, "tensor '%s' has an unknown type", name);
	if (n_dims < 1 || n_dims > LG_GGUF_MAX_DIMS)
		return writer_fail(w, LG_ERR_ARG, "tensor '%s' must have 1 to 4 dimensions", name);
	for (uint32_t d = 0; d < n_dims; d++)
	{
		if (ne[d] < 0)
			return writer_fail(w, LG_ERR_ARG, "tensor '%s' has a negative dimension", name);
		if (d > 0)
		{
			if (ne[d] != 0 && rows > (uint64_t) INT64_MAX / (uint64_t) ne[d])
				return writer_fail(w, LG_ERR_ARG, "tensor '%s' is too large", name);
			rows *= (uint64_t) ne[d];
		}
	}
	if (ne[0] % ti->block_size != 0)
		return writer_fail(w, LG_ERR_ARG,
						   "tensor '%s' has rows that are not a multiple of its type's block size", name);
	row = lg_row_size(type, ne[0]);
	if (ne[0] > 0 && row == 0)
		return writer_fail(w, LG_ERR_ARG, "tensor '%s' is too large", name);
	if (rows != 0 && row > SIZE_MAX / rows)
		return writer_fail(w, LG_ERR_ARG, "tensor '%s' is too large", name);
	nbytes = (uint64_t) row * rows;
	for (size_t i = 0; i < w->n_t; i++)
	{
		if (w->t[i].name_len == name_len && memcmp(w->t[i].name, name, name_len) == 0)
			return writer_fail(w, LG_ERR_ARG, "duplicate tensor name '%s'", name);
	}
	if (w->n_t == w->cap_t)
	{
		size_t		cap = w->cap_t ? w->cap_t * 2 : 64;
		wtensor    *p = realloc(w->t, cap * sizeof(wtensor));

		if (p == NULL)
			return writer_fail(w, LG_ERR_NOMEM, "out of memory adding tensor '%s'", name);
		w->t = p;
		w->cap_t = cap;
	}
	t = &w->t[w->n_t];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	t->data = data ? malloc(nbytes ? (size_t) nbytes : 1) : calloc(1, nbytes ? (size_t) nbytes : 1);
	if (t->name == NULL || t->data == NULL)
	{
		free(t->name);
		free(t->data);
		return writer_fail(w, LG_ERR_NOMEM, "out of memory for the data of tensor '%s'", name);
	}
	if (data && nbytes > 0)
		memcpy(t->data, data, (size_t) nbytes);
	t->name_len = name_len;
	t->type = type;
	t->n_dims = n_dims;
	for (uint32_t d = 0; d < LG_GGUF_MAX_DIMS; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	t->nbytes = (size_t) nbytes;
	w->n_t++;
	return LG_OK;
}

/* fwrite all of n bytes; false with errno on failure. */
static bool
write_all(FILE *f, const void *p, size_t n)
{
	const uint8_t *c = p;

	while (n > 0)
	{
		size_t		chunk = n < ((size_t) 1 << 26) ? n : ((size_t) 1 << 26);
		size_t		done = fwrite(c, 1, chunk, f);

		if (done != chunk)
			return false;
		c += done;
		n -= done;
	}
	return true;
}

/* Write zero bytes up to the next multiple of align after pos. */
static bool
write_pad(FILE *f, uint64_t pos, uint32_t align)
{
	static const uint8_t zeros[256];
	uint64_t	pad = (align - pos % align) % align;

	while (pad > 0)
	{
		size_t		n = pad < sizeof(zeros) ? (size_t) pad : sizeof(zeros);

		if (!write_all(f, zeros, n))
			return false;
		pad -= n;
	}
	return true;
}

/*
 * Serialize the header (magic through tensor infos) into b; tensor offsets
 * are laid out in order, each aligned.
 */
static void
build_header(lg_gguf_writer *w, bytes *b, bool add_alignment)
{
	uint64_t	offset = 0;

	bytes_u32(b, LG_GGUF_MAGIC);
	bytes_u32(b, 3);
	bytes_u64(b, w->n_t);
	bytes_u64(b, w->n_kv + (add_alignment ? 1 : 0));
	for (size_t i = 0; i < w->n_kv; i++)
	{
		const wkv  *kv = &w->kv[i];

		bytes_str(b, kv->key, kv->key_len);
		bytes_u32(b, kv->type);
		if (kv->type == LG_GGUF_UINT32 && strcmp(kv->key, "general.alignment") == 0)
			bytes_u32(b, w->alignment);		/* set_alignment may have changed it since */
		else
			bytes_put(b, kv->val, kv->val_len);
	}
	if (add_alignment)
	{
		bytes_str(b, "general.alignment", strlen("general.alignment"));
		bytes_u32(b, LG_GGUF_UINT32);
		bytes_u32(b, w->alignment);
	}
	for (size_t i = 0; i < w->n_t; i++)
	{
		const wtensor *t = &w->t[i];

		bytes_str(b, t->name, t->name_len);
		bytes_u32(b, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims; d++)
			bytes_u64(b, (uint64_t) t->ne[d]);
		bytes_u32(b, (uint32_t) t->type);
		bytes_u64(b, offset);
		offset += (t->nbytes + w->alignment - 1) / w->alignment * w->alignment;
	}
}

/* Write everything to path (atomically, through path.tmp). */
lg_status
lg_gguf_writer_write(lg_gguf_writer *w, const char *path, lg_error *err)
{
	bytes		hdr = {0};
	bool		add_alignment;
	char	   *tmp;
	FILE	   *f;
	uint64_t	pos;
	int			saved;

	if (w == NULL || path == NULL)
		return lg_error_set(err, LG_ERR_ARG, "no writer or no path");
	if (w->first_err.status != LG_OK)
		return lg_error_set(err, w->first_err.status, "%s", w->first_err.msg);

	/* with alignment below a type's needs, the reader would refuse the file */
	for (size_t i = 0; i < w->n_t; i++)
	{
		if (w->alignment < lg_type_alignment(w->t[i].type))
			return lg_error_set(err, LG_ERR_ARG,
								"alignment %" PRIu32 " is too small for tensor '%s' of type %s",
								w->alignment, w->t[i].name, lg_type_get(w->t[i].type)->name);
	}
	add_alignment = w->alignment != LG_GGUF_DEFAULT_ALIGNMENT;
	for (size_t i = 0; i < w->n_kv && add_alignment; i++)
	{
		if (strcmp(w->kv[i].key, "general.alignment") == 0)
			add_alignment = false;
	}
	build_header(w, &hdr, add_alignment);
	if (hdr.oom)
	{
		free(hdr.p);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory building the GGUF header for \"%s\"", path);
	}

	tmp = malloc(strlen(path) + 5);
	if (tmp == NULL)
	{
		free(hdr.p);
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	}
	strcpy(tmp, path);
	strcat(tmp, ".tmp");
	f = fopen(tmp, "wb");
	if (f == NULL)
	{
		lg_error_set(err, LG_ERR_IO, "cannot create \"%s\": %s", tmp, strerror(errno));
		free(hdr.p);
		free(tmp);
		return LG_ERR_IO;
	}
	if (!write_all(f, hdr.p, hdr.len))
		goto io_error;
	pos = hdr.len;
	if (!write_pad(f, pos, w->alignment))
		goto io_error;
	for (size_t i = 0; i < w->n_t; i++)
	{
		if (!write_all(f, w->t[i].data, w->t[i].nbytes) ||
			!write_pad(f, w->t[i].nbytes, w->alignment))
			goto io_error;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		goto io_error;
	if (fclose(f) != 0)
	{
		f = NULL;
		goto io_error;
	}
	f = NULL;
	if (rename(tmp, path) != 0)
	{
		saved = errno;
		unlink(tmp);
		lg_error_set(err, LG_ERR_IO, "cannot rename \"%s\" to \"%s\": %s", tmp, path, strerror(saved));
		free(hdr.p);
		free(tmp);
		return LG_ERR_IO;
	}
	free(hdr.p);
	free(tmp);
	return LG_OK;

io_error:
	saved = errno;
	if (f != NULL)
		fclose(f);
	unlink(tmp);
	lg_error_set(err, LG_ERR_IO, "cannot write \"%s\": %s", tmp, strerror(saved));
	free(hdr.p);
	free(tmp);
	return LG_ERR_IO;
}
