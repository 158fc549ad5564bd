/*
 * models.c — the model registry: looking models up (with the per-model
 * privilege check), llm_register_model, llm_load_model, llm_unload_model.
 *
 * A model may be used by superusers, members of llm_admin, and members of
 * any role granted it in llamagpu.llm_model_grants (grantee 0 is PUBLIC).
 */
#include "llamagpu.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(llm_register_model);
PG_FUNCTION_INFO_V1(llm_load_model);
PG_FUNCTION_INFO_V1(llm_unload_model);

#define MODEL_NAME_MAXLEN 63

static const char *const lookup_sql =
"SELECT m.path, m.options::text, "
"  pg_catalog.pg_has_role('llm_admin', 'MEMBER') OR EXISTS ("
"    SELECT 1 FROM llamagpu.llm_model_grants g"
"    WHERE g.model = m.name AND (g.grantee = 0 OR EXISTS ("
"      SELECT 1 FROM pg_catalog.pg_roles r"
"      WHERE r.oid = g.grantee AND pg_catalog.pg_has_role(r.oid, 'MEMBER')))), "
"  m.sha256, m.provider, m.base_url, m.remote_model, m.api_key_secret"
" FROM llamagpu.llm_models m WHERE m.name = $1";

/* context_size from a model's options (a JSON object as text). */
static int
options_context_size(const char *options)
{
	Jsonb	   *jb;
	JsonbValue	key;
	JsonbValue *v;

	if (options == NULL)
		return 0;
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(options)));
	if (!JB_ROOT_IS_OBJECT(jb))
		return 0;
	key.type = jbvString;
	key.val.string.val = "context_size";
	key.val.string.len = strlen("context_size");
	v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &key);
	if (v == NULL || v->type != jbvNumeric)
		return 0;
	return DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(v->val.numeric)));
}

/* Column col of the lookup's row as a string in cxt, or NULL. */
static char *
lookup_text(int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/* The registered model called name (NULL: the default model). */
LlamagpuModel *
LlamagpuModelLookup(const char *name, bool check_usage)
{
	LlamagpuModel *model;
	MemoryContext outer = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	bool		allowed;
	char	   *options;
	int			ret;

	if (name == NULL || name[0] == '\0')
	{
		name = llamagpu_default_model;
		if (name == NULL || name[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("no model specified"),
					 errhint("Pass the model argument or set llamagpu.default_model.")));
	}

	args[0] = CStringGetTextDatum(name);
	SPI_connect();
	ret = SPI_execute_with_args(lookup_sql, 1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("See the registered models in llamagpu.llm_models; llamagpu.llm_register_model() adds one.")));

	allowed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	if (check_usage && !allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for model \"%s\"", name),
				 errhint("An llm_admin grants it with: SELECT llamagpu.llm_grant_model('%s', 'role_name');", name)));

	model = MemoryContextAllocZero(outer, sizeof(LlamagpuModel));
	model->name = MemoryContextStrdup(outer, name);
	model->path = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	options = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	model->context_size = options_context_size(options);
	model->sha256 = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4));
	/* a remote model (85_providers.sql): columns 5 to 8, NULL for a local one */
	model->provider = lookup_text(5, outer);
	model->base_url = lookup_text(6, outer);
	model->remote_model = lookup_text(7, outer);
	model->api_key_secret = lookup_text(8, outer);
	model->options = options ? MemoryContextStrdup(outer, options) : NULL;
	/* the response cache's model identity follows the endpoint, even one changed by UPDATE */
	if (model->provider)
		model->sha256 = MemoryContextStrdup(outer, psprintf("%s %s %s", model->provider,
															model->base_url, model->remote_model));
	SPI_finish();
	return model;
}

/* The fields that name a model in a request. */
void
LlamagpuModelFields(StringInfo buf, LlamagpuModel *model)
{
	EngineField(buf, "model", model->name);
	EngineField(buf, "path", model->path);
	if (model->context_size > 0)
		EngineFieldInt(buf, "n_ctx", model->context_size);
	/* so the engine's log lines about it (a load, say) name this backend */
	EngineFieldInt(buf, "backend_pid", MyProcPid);
	/* a remote model: the engine answers that it has no weights or vocabulary here */
	if (model->provider)
		EngineField(buf, "provider", model->provider);
}

/* Check registration options: an object with known keys of the right types. */
static void
check_register_options(Jsonb *options)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "context_size") == 0)
		{
			if (v.type != jbvNumeric)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"%s\" must be a number", key)));
			if (options_context_size(JsonbToCString(NULL, &options->root, VARSIZE(options))) < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" must not be negative", key)));
		}
		else if (strcmp(key, "description") == 0)
		{
			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"%s\" must be a string", key)));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized model option \"%s\"", key),
					 errhint("Valid model options are: context_size, description.")));
	}
}

/* The path to register: relative paths are under model_dir; must exist. */
static char *
resolve_model_path(const char *path)
{
	char	   *joined;
	char	   *real;
	bool		have_dir = llamagpu_model_dir && llamagpu_model_dir[0];

	if (path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("model path must not be empty")));
	if (is_absolute_path(path))
		joined = pstrdup(path);
	else if (have_dir)
		joined = psprintf("%s/%s", llamagpu_model_dir, path);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relative model path \"%s\" needs llamagpu.model_dir", path),
				 errhint("Give an absolute path, or set llamagpu.model_dir.")));

	real = realpath(joined, NULL);
	if (real == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not access model file \"%s\": %m", joined)));

	if (!superuser())
	{
		char	   *dir = have_dir ? realpath(llamagpu_model_dir, NULL) : NULL;
		size_t		n = dir ? strlen(dir) : 0;

		if (dir == NULL || strncmp(real, dir, n) != 0 || real[n] != '/')
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to register model file \"%s\"", joined),
					 errdetail("Only superusers may register files outside llamagpu.model_dir."),
					 errhint("Move the file under llamagpu.model_dir (now \"%s\").",
							 have_dir ? llamagpu_model_dir : "")));
		free(dir);
	}
	joined = pstrdup(real);
	free(real);
	return joined;
}

/* Read the magic number: a quick, clear error before asking the engine. */
static void
check_gguf_magic(const char *path)
{
	char		magic[4];
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	struct stat st;

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model file \"%s\": %m", path)));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || read(fd, magic, 4) != 4 ||
		memcmp(magic, "GGUF", 4) != 0)
	{
		CloseTransientFile(fd);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("file \"%s\" is not a valid GGUF model", path),
				 errdetail("The file does not start with the GGUF magic number."),
				 errhint("Register a model in GGUF format, e.g. one converted by llama.cpp.")));
	}
	CloseTransientFile(fd);
}

/* The file's SHA-256 as hex (reads the whole file; interruptible). */
static char *
file_sha256(const char *path)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[32];
	char	   *hex = palloc(65);
	char	   *buf = palloc(1024 * 1024);
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	ssize_t		n;

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model file \"%s\": %m", path)));
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize SHA-256");
	while ((n = read(fd, buf, 1024 * 1024)) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		if (pg_cryptohash_update(ctx, (uint8 *) buf, n) < 0)
			elog(ERROR, "could not compute SHA-256");
	}
	if (n < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read model file \"%s\": %m", path)));
	CloseTransientFile(fd);
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256");
	pg_cryptohash_free(ctx);
	hex_encode((const char *) digest, 32, hex);
	hex[64] = '\0';
	return hex;
}

/*
 * llm_register_model(name, path, options): read the file's header (in the
 * engine, so a hostile file cannot crash a backend), hash it, insert the row.
 * Any failure raises an ERROR before the INSERT, so nothing is half-registered.
 */
Datum
llm_register_model(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *path;
	Jsonb	   *options = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	EngineConn *conn;
	StringInfoData req;
	EngineFrame res;
	char	   *sha;
	TupleDesc	tupdesc;
	HeapTuple	tuple;
	Oid			argtypes[10] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID, INT4OID,
	INT8OID, TEXTOID, JSONBOID, INT4OID};
	Datum		args[10];
	int			ret;
	const char *v;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model path must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	path = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (name[0] == '\0' || strlen(name) > MODEL_NAME_MAXLEN ||
		strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") != strlen(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid model name \"%s\"", name),
				 errdetail("Model names have 1 to %d characters: letters, digits, \"_\", \".\", \":\" and \"-\".",
						   MODEL_NAME_MAXLEN)));
	if (options)
		check_register_options(options);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	/* an existing name is an error before any work */
	SPI_connect();
	args[0] = CStringGetTextDatum(name);
	ret = SPI_execute_with_args("SELECT 1 FROM llamagpu.llm_models WHERE name = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already exists", name),
				 errhint("Drop it first with llamagpu.llm_drop_model('%s').", name)));

	path = resolve_model_path(path);
	check_gguf_magic(path);

	conn = EngineConnect(llamagpu_connect_timeout, false);
	initStringInfo(&req);
	EngineField(&req, "path", path);
	EngineCall(conn, LG_FRAME_INSPECT, &req, &res);
	EngineClose(conn);

	sha = file_sha256(path);

	args[1] = CStringGetTextDatum(path);
	v = EngineFrameGet(&res, "architecture");
	args[2] = CStringGetTextDatum(v ? v : "unknown");
	v = EngineFrameGet(&res, "parameters");
	args[3] = Int64GetDatum(v ? strtoll(v, NULL, 10) : 0);
	v = EngineFrameGet(&res, "quantization");
	args[4] = CStringGetTextDatum(v ? v : "unknown");
	v = EngineFrameGet(&res, "context_length");
	args[5] = Int32GetDatum(v ? atoi(v) : 0);
	v = EngineFrameGet(&res, "file_size");
	args[6] = Int64GetDatum(v ? strtoll(v, NULL, 10) : 0);
	args[7] = CStringGetTextDatum(sha);
	args[8] = options ? JsonbPGetDatum(options) :
		DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));

	ret = SPI_execute_with_args("INSERT INTO llamagpu.llm_models "
								"(name, path, architecture, parameters, quantization, "
								" context_length, file_size, sha256, options) "
								"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
								9, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not insert into llm_models: %s", SPI_result_code_string(ret));
	tuple = SPI_copytuple(SPI_tuptable->vals[0]);
	SPI_finish();

	PG_RETURN_DATUM(heap_copy_tuple_as_datum(tuple, tupdesc));
}

/* llm_load_model(name): load the model in the engine now. */
Datum
llm_load_model(PG_FUNCTION_ARGS)
{
	LlamagpuModel *model;
	EngineConn *conn;
	StringInfoData req;
	EngineFrame res;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name must not be null")));
	model = LlamagpuModelLookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	conn = EngineConnect(llamagpu_connect_timeout, false);
	initStringInfo(&req);
	LlamagpuModelFields(&req, model);
	EngineCall(conn, LG_FRAME_LOAD, &req, &res);
	EngineClose(conn);
	PG_RETURN_BOOL(true);
}

/* llm_unload_model(name): free the model in the engine; false if it was not loaded. */
Datum
llm_unload_model(PG_FUNCTION_ARGS)
{
	LlamagpuModel *model;
	EngineConn *conn;
	StringInfoData req;
	EngineFrame res;
	const char *v;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name must not be null")));
	model = LlamagpuModelLookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	conn = EngineConnect(llamagpu_connect_timeout, false);
	initStringInfo(&req);
	EngineField(&req, "model", model->name);
	EngineFieldInt(&req, "backend_pid", MyProcPid);
	EngineCall(conn, LG_FRAME_UNLOAD, &req, &res);
	EngineClose(conn);
	v = EngineFrameGet(&res, "unloaded");
	PG_RETURN_BOOL(v && strcmp(v, "1") == 0);
}
