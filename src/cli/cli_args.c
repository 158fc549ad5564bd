/*
 * cli_args.c — option parsing shared by the subcommands.
 */
#include "cli_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int
cli_fail(const char *cmd, int status, const char *fmt, ...)
{
	va_list		ap;

	fprintf(stderr, "llamagpu %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

bool
cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char	   *end;
	long long	v;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

bool
cli_parse_f32(const char *s, float lo, float hi, float *out)
{
	char	   *end;
	double		v;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi)
		return false;
	*out = (float) v;
	return true;
}

const char *
cli_value(const char *cmd, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
	{
		cli_fail(cmd, 2, "option %s needs a value", argv[*i]);
		return NULL;
	}
	(*i)++;
	return argv[*i];
}

void
cli_model_opts_init(cli_model_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->kv_type = LG_KV_F16;
}

int
cli_model_opt(const char *cmd, cli_model_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char *val;
	int64_t		n;

	if (strcmp(a, "--reference") == 0)
	{
		o->reference = true;
		return 1;
	}
	if (strcmp(a, "-m") && strcmp(a, "--model") && strcmp(a, "-t") && strcmp(a, "--threads") &&
		strcmp(a, "-c") && strcmp(a, "--ctx") && strcmp(a, "-b") && strcmp(a, "--batch") &&
		strcmp(a, "--kv") && strcmp(a, "--device"))
		return 0;
	if ((val = cli_value(cmd, argc, argv, i)) == NULL)
		return -1;
	if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0)
		o->model = val;
	else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0)
	{
		if (!cli_parse_i64(val, 0, 1024, &n))
			return cli_fail(cmd, 2, "invalid thread count \"%s\" (0 to 1024)", val), -1;
		o->threads = (int32_t) n;
	}
	else if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx") == 0)
	{
		if (!cli_parse_i64(val, 0, 1 << 24, &n))
			return cli_fail(cmd, 2, "invalid context size \"%s\"", val), -1;
		o->n_ctx = (int32_t) n;
	}
	else if (strcmp(a, "-b") == 0 || strcmp(a, "--batch") == 0)
	{
		if (!cli_parse_i64(val, 1, 1 << 16, &n))
			return cli_fail(cmd, 2, "invalid batch size \"%s\"", val), -1;
		o->n_batch = (int32_t) n;
	}
	else if (strcmp(a, "--device") == 0)
	{
		if (val[0] == '\0')
			return cli_fail(cmd, 2, "invalid device \"\" (cpu, auto or cuda:N)"), -1;
		o->device = val;
	}
	else if (strcmp(val, "f16") == 0)
		o->kv_type = LG_KV_F16;
	else if (strcmp(val, "f32") == 0)
		o->kv_type = LG_KV_F32;
	else
		return cli_fail(cmd, 2, "invalid KV cache type \"%s\" (f16 or f32)", val), -1;
	return 1;
}

bool
cli_open_model(const char *cmd, const cli_model_opts *o, lg_model **m, lg_context **c)
{
	lg_error	err;
	lg_context_params cp;

	lg_error_clear(&err);
	*m = NULL;
	if (c)
		*c = NULL;
	if (o->model == NULL)
	{
		cli_fail(cmd, 2, "no model given (use -m FILE)");
		return false;
	}
	*m = lg_model_load(o->model, &err);
	if (*m == NULL)
	{
		cli_fail(cmd, 1, "%s: %s", o->model, err.msg);
		return false;
	}
	if (c == NULL)
		return true;
	lg_context_params_default(&cp);
	cp.n_ctx = o->n_ctx;
	cp.n_batch = o->n_batch;
	cp.kv_type = o->kv_type;
	cp.n_threads = o->threads;
	cp.reference = o->reference;
	cp.device = o->device ? o->device : "auto";
	*c = lg_context_new(*m, &cp, &err);
	if (*c == NULL)
	{
		cli_fail(cmd, 1, "%s", err.msg);
		lg_model_free(*m);
		*m = NULL;
		return false;
	}
	return true;
}
