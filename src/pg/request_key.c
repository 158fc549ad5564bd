/*
 * request_key.c — the API key the current transaction authenticated with.
 *
 * PostgREST runs each HTTP request in one transaction: llm_pre_request()
 * checks the key, switches to its role and records the key here, so quotas,
 * rate limits and usage rows can name it.  The record lives in backend
 * memory, not in a setting, because a setting can be changed by any SQL the
 * client sends; and it ends with the transaction, because the next request
 * on the same connection may come from someone else.
 */
#include "llamagpu.h"

#include "access/xact.h"

static LlamagpuApiKey current_key;
static bool have_key = false;
static bool callback_registered = false;

/* Forget the key when the transaction ends, however it ends. */
static void
request_key_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			have_key = false;
			break;
		default:
			break;
	}
}

const LlamagpuApiKey *
LlamagpuCurrentApiKey(void)
{
	return have_key ? &current_key : NULL;
}

void
LlamagpuSetCurrentApiKey(const LlamagpuApiKey *key)
{
	if (!callback_registered)
	{
		RegisterXactCallback(request_key_xact_callback, NULL);
		callback_registered = true;
	}
	if (key == NULL)
	{
		have_key = false;
		return;
	}
	current_key = *key;
	have_key = true;
}
