/*
 * lg_error.c — recording engine errors.
 */
#include "lg_error.h"

#include <stdio.h>

lg_status
lg_error_set(lg_error *err, lg_status status, const char *fmt, ...)
{
	va_list		ap;

	if (err == NULL)
		return status;
	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return status;
}

void
lg_error_clear(lg_error *err)
{
	if (err == NULL)
		return;
	err->status = LG_OK;
	err->msg[0] = '\0';
}

const char *
lg_status_name(lg_status status)
{
	switch (status)
	{
		case LG_OK: return "ok";
		case LG_ERR_IO: return "i/o error";
		case LG_ERR_FORMAT: return "invalid format";
		case LG_ERR_UNSUPPORTED: return "not supported";
		case LG_ERR_NOMEM: return "out of memory";
		case LG_ERR_ARG: return "invalid argument";
		case LG_ERR_RANGE: return "out of range";
		case LG_ERR_CANCELLED: return "cancelled";
		case LG_ERR_INTERNAL: return "internal error";
		case LG_ERR_BUSY: return "busy";
	}
	return "unknown status";
}
