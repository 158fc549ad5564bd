/*
 * lg_error.h — status codes and error messages of the llamagpu engine.
 *
 * The engine never exits or aborts: every fallible function returns an
 * lg_status and, when given an lg_error, fills it with a one-line message
 * naming what went wrong.  The Postgres side maps lg_status to SQLSTATEs in
 * one table; the command-line tool prints the message.
 */
#ifndef LG_ERROR_H
#define LG_ERROR_H

#include <stdarg.h>

typedef enum lg_status
{
	LG_OK = 0,
	LG_ERR_IO,			/* cannot open/read/write/map a file */
	LG_ERR_FORMAT,		/* malformed or truncated file or input */
	LG_ERR_UNSUPPORTED, /* valid but not supported (type, architecture) */
	LG_ERR_NOMEM,		/* allocation failed */
	LG_ERR_ARG,			/* bad argument from the caller */
	LG_ERR_RANGE,		/* value out of range (context full, id too big) */
	LG_ERR_CANCELLED,	/* stopped by the caller */
	LG_ERR_INTERNAL,	/* a bug: an invariant did not hold */
	LG_ERR_BUSY			/* a queue or pool is full: try again later */
} lg_status;

#define LG_ERROR_MSG_LEN 512

typedef struct lg_error
{
	lg_status	status;
	char		msg[LG_ERROR_MSG_LEN];
} lg_error;

/* Record status and message in err (which may be NULL); returns status. */
lg_status	lg_error_set(lg_error *err, lg_status status, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));
void		lg_error_clear(lg_error *err);
const char *lg_status_name(lg_status status);

#endif							/* LG_ERROR_H */
