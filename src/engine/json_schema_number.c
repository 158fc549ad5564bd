/*
 * json_schema_number.c — integers and numbers with bounds.
 *
 * Integer ranges are exact digit grammars (as llama.cpp's
 * json-schema-to-grammar builds them): for each digit count, a fixed-length
 * range split at the first digit where the bounds differ.  Number bounds
 * are decimal: the integer part is a range, and the fraction digits next
 * to a bound are compared digit by digit with the bound's fraction, so 0.5
 * <= x < 2.25 is exact without floating point.  Bounded numbers are written
 * without exponents.
 */
#include "json_schema_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JS_INT_DIGITS 20		/* the integer grammar allows up to 20 digits */

/* Decimal digits of v >= 0 as a string. */
static int
js_u64str(char *buf, uint64_t v)
{
	return snprintf(buf, 24, "%llu", (unsigned long long) v);
}

/* Strings lo <= hi of equal length: the digit grammar of the range. */
static void
js_fixed_range(lg_buf *b, const char *lo, const char *hi, size_t len)
{
	size_t		i = 0, r;
	bool		lo0 = true, hi9 = true;
	int			dl, dh, start, end;
	int			alts = 0;

	while (i < len && lo[i] == hi[i])
		i++;
	if (i > 0)
	{
		lg_buf_append(b, "\"", 1);
		lg_buf_append(b, lo, i);
		lg_buf_append(b, "\" ", 2);
	}
	if (i == len)
		return;
	r = len - i - 1;
	for (size_t k = i + 1; k < len; k++)
	{
		lo0 &= lo[k] == '0';
		hi9 &= hi[k] == '9';
	}
	dl = lo[i] - '0';
	dh = hi[i] - '0';
	lg_buf_append(b, "( ", 2);
	start = dl;
	end = dh;
	if (!lo0)
	{
		char		nines[24];

		memset(nines, '9', r);
		lg_buf_appendf(b, "\"%d\" ", dl);
		js_fixed_range(b, lo + i + 1, nines, r);
		start = dl + 1;
		alts++;
	}
	if (!hi9)
		end = dh - 1;
	if (start <= end)
	{
		if (alts++)
			lg_buf_append(b, " | ", 3);
		if (start == end)
			lg_buf_appendf(b, "\"%d\"", start);
		else
			lg_buf_appendf(b, "[%d-%d]", start, end);
		if (r == 1)
			lg_buf_append(b, " [0-9]", 6);
		else if (r > 1)
			lg_buf_appendf(b, " [0-9]{%zu}", r);
	}
	if (!hi9)
	{
		char		zeros[24];

		memset(zeros, '0', r);
		if (alts++)
			lg_buf_append(b, " | ", 3);
		lg_buf_appendf(b, "\"%d\" ", dh);
		js_fixed_range(b, zeros, hi + i + 1, r);
	}
	lg_buf_append(b, " )", 2);
}

/* Non-negative integers in [a, b] (no upper bound when !has_b), no leading zeros. */
static void
js_nonneg_range(lg_buf *b, uint64_t a, bool has_b, uint64_t hi)
{
	char		as[24], bs[24];
	int			la = js_u64str(as, a);
	int			lb = has_b ? js_u64str(bs, hi) : JS_INT_DIGITS;
	int			alts = 0;

	lg_buf_append(b, "( ", 2);
	for (int d = la; d <= lb; d++)
	{
		char		lo_s[24], hi_s[24];

		if (!has_b && d > la)
		{
			/* every longer number */
			if (alts++)
				lg_buf_append(b, " | ", 3);
			lg_buf_appendf(b, "[1-9] [0-9]{%d,%d}", la, JS_INT_DIGITS - 1);
			break;
		}
		if (d == la)
			memcpy(lo_s, as, la);
		else
		{
			lo_s[0] = '1';
			memset(lo_s + 1, '0', d - 1);
		}
		if (has_b && d == lb)
			memcpy(hi_s, bs, lb);
		else
			memset(hi_s, '9', d);
		if (alts++)
			lg_buf_append(b, " | ", 3);
		js_fixed_range(b, lo_s, hi_s, d);
	}
	lg_buf_append(b, " )", 2);
}

/* Integers in [lo, hi]; either side may be open.  False when the range is empty. */
bool
js_int_range(lg_buf *out, bool has_lo, int64_t lo, bool has_hi, int64_t hi)
{
	int			alts = 0;

	if (has_lo && has_hi && lo > hi)
		return false;
	lg_buf_append(out, "( ", 2);
	if (!has_lo || lo < 0)
	{
		/* negatives: -m for m in [max(1, -hi), -lo] */
		uint64_t	mlo = (has_hi && hi < 0) ? (uint64_t) (-(hi + 1)) + 1 : 1;

		lg_buf_append(out, "\"-\" ", 4);
		js_nonneg_range(out, mlo, has_lo, has_lo ? (uint64_t) (-(lo + 1)) + 1 : 0);
		alts++;
	}
	if (!has_hi || hi >= 0)
	{
		if (alts++)
			lg_buf_append(out, " | ", 3);
		js_nonneg_range(out, has_lo && lo > 0 ? (uint64_t) lo : 0, has_hi, has_hi ? (uint64_t) hi : 0);
	}
	lg_buf_append(out, " )", 2);
	return true;
}

/* A numeric bound: present, its value, exclusive (draft 4 boolean and draft 6 numeric forms). */
typedef struct js_bnd
{
	const lg_json_node *v;
	bool		excl;
} js_bnd;

/* The lower (upper) bound of s, the tighter of the inclusive and exclusive keywords. */
static bool
js_get_bound(js_ctx *c, const lg_json_node *s, bool upper, js_bnd *bd, const char *path)
{
	const char *ik = upper ? "maximum" : "minimum";
	const char *ek = upper ? "exclusiveMaximum" : "exclusiveMinimum";
	const lg_json_node *inc = lg_json_get(s, ik);
	const lg_json_node *ex = lg_json_get(s, ek);

	bd->v = NULL;
	bd->excl = false;
	if (inc && inc->kind != LG_JSON_NUMBER)
		return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s is not a number", ik, path);
	if (ex && ex->kind != LG_JSON_NUMBER && ex->kind != LG_JSON_BOOL)
		return js_fail(c, LG_ERR_FORMAT, "\"%s\" at %s is not a number or boolean", ek, path);
	bd->v = inc;
	if (ex && ex->kind == LG_JSON_BOOL)
		bd->excl = ex->boolean && inc;
	else if (ex && (inc == NULL || (upper ? ex->number <= inc->number : ex->number >= inc->number)))
	{
		bd->v = ex;
		bd->excl = true;
	}
	return true;
}

/* The multipleOf value, or 0 when absent. */
static bool
js_multiple(js_ctx *c, const lg_json_node *s, const char *path, double *m)
{
	const lg_json_node *v = lg_json_get(s, "multipleOf");

	*m = 0;
	if (v == NULL)
		return true;
	if (v->kind != LG_JSON_NUMBER || !(v->number > 0))
		return js_fail(c, LG_ERR_FORMAT, "\"multipleOf\" at %s is not a positive number", path);
	*m = v->number;
	return true;
}

bool
js_integer_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out)
{
	js_bnd		lb, ub;
	bool		has_lo = false, has_hi = false;
	int64_t		lo = 0, hi = 0;
	double		m;

	if (!js_get_bound(c, s, false, &lb, path) || !js_get_bound(c, s, true, &ub, path) ||
		!js_multiple(c, s, path, &m))
		return false;
	if (lb.v)
	{
		double		x = lb.v->number;

		/* below -1e20 the 20-digit grammar is the tighter bound */
		if (x > -1e20)
		{
			if (x < -9.2e18 || x > 9.2e18)
				return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"minimum\" at %s: beyond 64-bit integers", path);
			has_lo = true;
			if (lb.v->is_int)
				lo = lb.v->integer + (lb.excl ? 1 : 0);
			else
				lo = lb.excl ? (int64_t) floor(x) + 1 : (int64_t) ceil(x);
		}
	}
	if (ub.v)
	{
		double		x = ub.v->number;

		if (x < 1e20)
		{
			if (x < -9.2e18 || x > 9.2e18)
				return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"maximum\" at %s: beyond 64-bit integers", path);
			has_hi = true;
			if (ub.v->is_int)
				hi = ub.v->integer - (ub.excl ? 1 : 0);
			else
				hi = ub.excl ? (int64_t) ceil(x) - 1 : (int64_t) floor(x);
		}
	}
	if (m > 0 && !(m <= 1 && fabs(1 / m - round(1 / m)) < 1e-9))
	{
		/* multiples of an integer step: listed when the range is small */
		int64_t		step = (int64_t) m;
		int64_t		first;
		int			alts = 0;

		if ((double) step != m)
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"multipleOf\" at %s: fractional step on integers", path);
		if (!has_lo || !has_hi || (hi - lo) / step > 256)
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"multipleOf\" at %s: needs minimum and maximum at most 256 steps apart", path);
		first = lo >= 0 ? (lo + step - 1) / step * step : -((-lo) / step * step);
		lg_buf_append(out, "( ", 2);
		for (int64_t v = first; v <= hi; v += step)
			lg_buf_appendf(out, "%s\"%lld\"", alts++ ? " | " : "", (long long) v);
		lg_buf_append(out, " )", 2);
		if (alts == 0)
			return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no integer", path);
		return true;
	}
	if (!has_lo && !has_hi)
		return lg_buf_append(out, js_prim(c, JS_P_INTEGER), strlen(js_prim(c, JS_P_INTEGER))) || js_oom(c);
	if (!js_int_range(out, has_lo, lo, has_hi, hi))
		return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no integer: minimum above maximum", path);
	return true;
}

/* A decimal bound: sign, integer digits (no leading zeros, "0" for none), fraction digits (no trailing zeros). */
typedef struct js_dec
{
	bool		neg;
	char		ip[48];
	char		fp[48];
} js_dec;

/* Parse a JSON number literal into a decimal; false when it has too many digits. */
static bool
js_dec_parse(const char *lit, js_dec *d)
{
	char		digits[96];
	size_t		nd = 0;
	long		point = -1, exp = 0;
	const char *p = lit;
	long		ip_len;
	size_t		k;

	memset(d, 0, sizeof(*d));
	if (*p == '-')
	{
		d->neg = true;
		p++;
	}
	for (; *p && *p != 'e' && *p != 'E'; p++)
	{
		if (*p == '.')
			point = (long) nd;
		else if (nd < sizeof(digits) - 1)
			digits[nd++] = *p;
		else
			return false;
	}
	if (*p)
		exp = strtol(p + 1, NULL, 10);
	if (point < 0)
		point = (long) nd;
	ip_len = point + exp;
	if (ip_len > 40 || ip_len < -40)
		return false;
	/* integer part */
	k = 0;
	for (long i = 0; i < ip_len; i++)
	{
		char		ch = i < (long) nd ? digits[i] : '0';

		if (k == 0 && ch == '0')
			continue;
		d->ip[k++] = ch;
	}
	if (k == 0)
		d->ip[k++] = '0';
	d->ip[k] = '\0';
	/* fraction */
	k = 0;
	for (long i = ip_len < 0 ? ip_len : ip_len; i < (long) nd; i++)
	{
		if (k >= sizeof(d->fp) - 1)
			return false;
		d->fp[k++] = i < 0 ? '0' : digits[i];
	}
	while (k > 0 && d->fp[k - 1] == '0')
		k--;
	d->fp[k] = '\0';
	if (strcmp(d->ip, "0") == 0 && k == 0)
		d->neg = false;
	return strlen(d->ip) <= 19;
}

/* Compare magnitudes of decimals. */
static int
js_dec_cmp(const js_dec *a, const js_dec *b)
{
	size_t		la = strlen(a->ip), lb = strlen(b->ip);
	int			c;

	if (la != lb)
		return la < lb ? -1 : 1;
	if ((c = strcmp(a->ip, b->ip)) != 0)
		return c < 0 ? -1 : 1;
	c = strcmp(a->fp, b->fp);	/* no trailing zeros: string order is numeric order */
	return c < 0 ? -1 : c > 0;
}

enum
{
	JS_GE, JS_GT, JS_LE, JS_LT
};

/* n to m digits (m < 0: no limit). */
static void
js_digits(lg_buf *b, long n, long m)
{
	if (m < 0)
		lg_buf_appendf(b, n == 0 ? "[0-9]*" : n == 1 ? "[0-9]+" : "[0-9]{%ld,}", n);
	else if (m == 0)
		lg_buf_append(b, "\"\"", 2);
	else
		lg_buf_appendf(b, "[0-9]{%ld,%ld}", n, m);
}

/*
 * Nonempty fraction digit strings D of at most left digits (-1: any) with
 * D (op) alpha, comparing as if padded with zeros.  False when none exists.
 */
static bool
js_frac_digits(lg_buf *b, const char *alpha, int op, long left)
{
	int			a0;
	bool		any = false;

	if (left == 0)
		return false;
	if (*alpha == '\0')
	{
		switch (op)
		{
			case JS_GE:
				js_digits(b, 1, left);
				return true;
			case JS_GT:
				/* some digit not zero: the first one at position i */
				if (left < 0)
				{
					lg_buf_append(b, "\"0\"* [1-9] [0-9]*", 17);
					return true;
				}
				lg_buf_append(b, "( ", 2);
				for (long i = 0; i < left; i++)
				{
					lg_buf_appendf(b, "%s\"0\"{%ld} [1-9] ", i ? " | " : "", i);
					js_digits(b, 0, left - 1 - i);
				}
				lg_buf_append(b, " )", 2);
				return true;
			case JS_LE:
				if (left < 0)
					lg_buf_append(b, "\"0\"+", 4);
				else
					lg_buf_appendf(b, "\"0\"{1,%ld}", left);
				return true;
			default:
				return false;
		}
	}
	a0 = alpha[0] - '0';
	lg_buf_append(b, "( ", 2);
	if ((op == JS_GE || op == JS_GT) && a0 < 9)
	{
		lg_buf_appendf(b, "[%d-9] ", a0 + 1);
		js_digits(b, 0, left < 0 ? -1 : left - 1);
		any = true;
	}
	if ((op == JS_LE || op == JS_LT) && a0 > 0)
	{
		lg_buf_appendf(b, "[0-%d] ", a0 - 1);
		js_digits(b, 0, left < 0 ? -1 : left - 1);
		any = true;
	}
	/* the same first digit: the rest compared, or nothing more */
	{
		lg_buf		sub;
		bool		rest_ok;
		bool		empty_ok;
		const char *rest = alpha + 1;

		lg_buf_init(&sub);
		rest_ok = js_frac_digits(&sub, rest, op, left < 0 ? -1 : left - 1);
		/* D == a0 alone equals a0000 vs alpha: equal when rest is empty */
		empty_ok = *rest == '\0' ? (op == JS_GE || op == JS_LE) : (op == JS_LE || op == JS_LT);
		if (rest_ok || empty_ok)
		{
			if (any)
				lg_buf_append(b, " | ", 3);
			lg_buf_appendf(b, "\"%d\"", a0);
			if (rest_ok)
				lg_buf_appendf(b, " %s%s%s", empty_ok ? "( " : "", sub.data, empty_ok ? " )?" : "");
			any = true;
		}
		lg_buf_free(&sub);
	}
	lg_buf_append(b, " )", 2);
	return any;
}

/* An optional fraction (".digits" or none, read as zero) with digits (op) alpha. */
static bool
js_frac(lg_buf *b, const char *alpha, int op, long left)
{
	lg_buf		d;
	bool		empty_ok, some;

	switch (op)
	{
		case JS_GE:
			empty_ok = *alpha == '\0';
			break;
		case JS_GT:
			empty_ok = false;
			break;
		case JS_LE:
			empty_ok = true;
			break;
		default:
			empty_ok = *alpha != '\0';
	}
	lg_buf_init(&d);
	some = js_frac_digits(&d, alpha, op, left);
	if (some)
		lg_buf_appendf(b, "( \".\" %s )%s", d.data, empty_ok ? "?" : "");
	else if (empty_ok)
		lg_buf_append(b, "\"\"", 2);
	lg_buf_free(&d);
	return some || empty_ok;
}

/*
 * Magnitudes in [A, B] (B absent: no upper bound), with exclusive ends:
 * integer part strictly between them with any fraction, or equal to an end
 * with the fraction compared.  Appends alternatives; false if it cannot.
 */
static bool
js_mag_range(js_ctx *c, lg_buf *b, const js_dec *A, bool a_ex, const js_dec *B, bool b_ex, int *alts, long left)
{
	uint64_t	ai = strtoull(A->ip, NULL, 10);

	if (B && strcmp(A->ip, B->ip) == 0)
	{
		/* the same integer part: only the simple case of an integral lower end */
		if (*A->fp != '\0' || a_ex)
			return false;
		if (*alts)
			lg_buf_append(b, " | ", 3);
		(*alts)++;
		lg_buf_appendf(b, "\"%s\" ", A->ip);
		return js_frac(b, B->fp, b_ex ? JS_LT : JS_LE, left);
	}
	/* integer part strictly inside */
	{
		uint64_t	bi = B ? strtoull(B->ip, NULL, 10) : 0;

		if (!B || bi >= ai + 2)
		{
			if ((*alts)++)
				lg_buf_append(b, " | ", 3);
			lg_buf_append(b, "( ", 2);
			js_nonneg_range(b, ai + 1, B != NULL, B ? bi - 1 : 0);
			if (left != 0)
			{
				lg_buf_append(b, " ( \".\" ", 7);
				js_digits(b, 1, left);
				lg_buf_append(b, " )?", 3);
			}
			lg_buf_append(b, " )", 2);
		}
	}
	/* integer part at the lower end */
	{
		lg_buf		f;

		lg_buf_init(&f);
		if (js_frac(&f, A->fp, a_ex ? JS_GT : JS_GE, left))
		{
			if ((*alts)++)
				lg_buf_append(b, " | ", 3);
			lg_buf_appendf(b, "( \"%s\" %s )", A->ip, f.data);
		}
		lg_buf_free(&f);
	}
	if (B)
	{
		lg_buf		f;

		lg_buf_init(&f);
		if (js_frac(&f, B->fp, b_ex ? JS_LT : JS_LE, left))
		{
			if ((*alts)++)
				lg_buf_append(b, " | ", 3);
			lg_buf_appendf(b, "( \"%s\" %s )", B->ip, f.data);
		}
		lg_buf_free(&f);
	}
	(void) c;
	return true;
}

bool
js_number_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out)
{
	js_bnd		lb, ub;
	js_dec		L, U, zero;
	double		m;
	long		left = -1;		/* fraction digits allowed (-1: any) */
	int			alts = 0;
	lg_buf		b;
	bool		ok = true;

	if (!js_get_bound(c, s, false, &lb, path) || !js_get_bound(c, s, true, &ub, path) ||
		!js_multiple(c, s, path, &m))
		return false;
	if (m > 0)
	{
		/* multipleOf 1: integers; 10^-k: at most k fraction digits (bounds as below) */
		double		k = -log10(m);

		if (m == 1)
			return js_integer_expr(c, s, path, out);
		if (fabs(k - round(k)) > 1e-9 || k < 0 || k > 15)
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"multipleOf\" at %s", path);
		left = (long) round(k);
		if (lb.v == NULL && ub.v == NULL)
			return lg_buf_appendf(out, "( %s ( \".\" [0-9]{1,%ld} )? )", js_prim(c, JS_P_INTEGER), left) || js_oom(c);
	}
	if (lb.v == NULL && ub.v == NULL)
		return lg_buf_append(out, js_prim(c, JS_P_NUMBER), strlen(js_prim(c, JS_P_NUMBER))) || js_oom(c);
	if ((lb.v && !js_dec_parse(lb.v->str, &L)) || (ub.v && !js_dec_parse(ub.v->str, &U)))
		return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported number bound at %s: too many digits", path);
	if (lb.v && ub.v && (lb.v->number > ub.v->number || (lb.v->number == ub.v->number && (lb.excl || ub.excl))))
		return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no number: minimum above maximum", path);
	js_dec_parse("0", &zero);
	lg_buf_init(&b);
	lg_buf_append(&b, "( ", 2);
	/* negative values: magnitudes from max(0, -U) (exclusive at 0) to -L */
	if (!lb.v || L.neg)
	{
		const js_dec *lo_m = &zero;
		bool		lo_ex = true;
		int			a2 = 0;
		lg_buf		nb;

		if (ub.v && U.neg)
		{
			lo_m = &U;
			lo_ex = ub.excl;
		}
		lg_buf_init(&nb);
		ok = js_mag_range(c, &nb, lo_m, lo_ex, lb.v ? &L : NULL, lb.v ? lb.excl : false, &a2, left);
		if (ok && a2)
		{
			lg_buf_appendf(&b, "\"-\" ( %s )", nb.data);
			alts++;
		}
		lg_buf_free(&nb);
	}
	/* non-negative values: from max(0, L) to U */
	if (ok && (!ub.v || !U.neg))
	{
		const js_dec *lo_m = &zero;
		bool		lo_ex = false;
		int			a2 = 0;
		lg_buf		pb;

		if (lb.v && !L.neg)
		{
			lo_m = &L;
			lo_ex = lb.excl;
		}
		lg_buf_init(&pb);
		if (!(ub.v && js_dec_cmp(lo_m, &U) > 0))
			ok = js_mag_range(c, &pb, lo_m, lo_ex, ub.v ? &U : NULL, ub.v ? ub.excl : false, &a2, left);
		if (ok && a2)
		{
			lg_buf_appendf(&b, "%s( %s )", alts ? " | " : "", pb.data);
			alts++;
		}
		lg_buf_free(&pb);
	}
	lg_buf_append(&b, " )", 2);
	if (!ok || alts == 0 || b.data == NULL)
	{
		lg_buf_free(&b);
		if (b.data == NULL && ok && alts)
			return js_oom(c);
		return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported number bounds at %s", path);
	}
	ok = lg_buf_append(out, b.data, b.len);
	lg_buf_free(&b);
	return ok || js_oom(c);
}
