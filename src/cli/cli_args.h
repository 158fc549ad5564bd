/*
 * cli_args.h — parsing the subcommands' options: numbers with ranges, and
 * the options every model-running command shares.
 */
#ifndef LG_CLI_ARGS_H
#define LG_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

/* Parse an integer in [lo, hi]; false on junk or out of range. */
bool		cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
/* Parse a finite float in [lo, hi]. */
bool		cli_parse_f32(const char *s, float lo, float hi, float *out);

/*
 * The value of option argv[*i] (the next argument), or NULL after printing
 * "option X needs a value"; advances *i.
 */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

/* Options shared by the commands that run a model. */
typedef struct cli_model_opts
{
	const char *model;			/* -m */
	int32_t		threads;		/* -t, 0 = all CPUs */
	int32_t		n_ctx;			/* -c/--ctx, 0 = model default (<= 4096) */
	int32_t		n_batch;		/* -b/--batch */
	lg_kv_type	kv_type;		/* --kv f16|f32 */
	bool		reference;		/* --reference: scalar reference kernels */
	const char *device;			/* --device cpu|auto|cuda:N; NULL = auto */
} cli_model_opts;

void		cli_model_opts_init(cli_model_opts *o);
/*
 * If argv[*i] is a shared model option, consume it (and its value) and
 * return 1; 0 if it is not one; -1 after printing an error.
 */
int			cli_model_opt(const char *cmd, cli_model_opts *o, int argc, char **argv, int *i);
/* Load the model and create a context; prints the error and returns false on failure. */
bool		cli_open_model(const char *cmd, const cli_model_opts *o, lg_model **m, lg_context **c);

#endif							/* LG_CLI_ARGS_H */
