/*
 * providers.c — remote models (docs/models.md, "Remote providers"): the fields that send a
 * GENERATE for a model registered with llm_register_remote_model to its
 * OpenAI-compatible endpoint instead of to local weights.  The engine does
 * the HTTP (src/cli/serve_provider.c); a backend only adds where to send it
 * and the API key.
 *
 * The key lives in llamagpu.llm_secrets, which only llm_admin can read: it
 * is read here as the table's owner, for any user the model is granted to,
 * and goes only into the request to the engine (never a setting, a log line
 * or an error message).
 */
#include "llamagpu.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

/* The value of secret name, read as llm_secrets' owner; an ERROR if there is none. */
static char *
secret_value(const char *name, const char *model)
{
	MemoryContext outer = CurrentMemoryContext;
	LlamagpuActAs save;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	char	   *value = NULL;
	int			ret;

	args[0] = CStringGetTextDatum(name);
	LlamagpuActAsOwner("llm_secrets", &save);
	SPI_connect();
	ret = SPI_execute_with_args("SELECT s.value FROM llamagpu.llm_secrets s WHERE s.name = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v)
			value = MemoryContextStrdup(outer, v);
	}
	SPI_finish();
	LlamagpuActAsUser(&save);
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("secret \"%s\" of model \"%s\" does not exist", name, model),
				 errdetail("The model's api_key_secret names a row of llamagpu.llm_secrets that is gone."),
				 errhint("An llm_admin stores it again with llamagpu.llm_set_secret() or \\copy llamagpu.llm_secrets.")));
	if (strchr(value, '\n') || strchr(value, '\r'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret \"%s\" of model \"%s\" is not a valid API key", name, model),
				 errdetail("An API key is one line; this one holds a line break."),
				 errhint("Store the key without its trailing newline.")));
	return value;
}

/*
 * Add a remote model's endpoint (provider, base_url, remote_model, its
 * options as provider_options) and its API key to a GENERATE request.
 */
void
LlamagpuProviderFields(StringInfo buf, LlamagpuModel *model)
{
	EngineField(buf, "provider", model->provider);
	EngineField(buf, "base_url", model->base_url);
	EngineField(buf, "remote_model", model->remote_model);
	if (model->options)
		EngineField(buf, "provider_options", model->options);
	if (model->api_key_secret)
	{
		char	   *key = secret_value(model->api_key_secret, model->name);

		EngineField(buf, "api_key", key);
		/* the copy in buf is the one that goes out */
		memset(key, 0, strlen(key));
		pfree(key);
	}
}
