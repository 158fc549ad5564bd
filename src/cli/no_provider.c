/*
 * no_provider.c — the engine server built without libcurl (a machine
 * without its headers, such as a bare GPU box): remote models are refused
 * with a clear error instead of the whole build failing.  With libcurl,
 * serve_provider*.c implement these and this file is empty.
 */
#include "serve.h"

#ifdef LG_NO_CURL

bool
serve_provider_is_remote(const serve_request *r)
{
	return serve_fields_get(&r->fields, "provider") != NULL;
}

void
serve_provider_request(serve_request *r)
{
	serve_send_error_detail(r, LG_WIRE_REMOTE_UNSUPPORTED, NULL,
							"Build llamagpu where libcurl's headers are installed (libcurl4-openssl-dev).",
							"this engine was built without libcurl: remote models are unavailable");
}

#else
/* ISO C wants something in a translation unit */
typedef int lg_no_provider_unused;
#endif
