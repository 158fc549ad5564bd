/*
 * jobs.c — table jobs from SQL: llm_job_create (every check as the caller,
 * at create time), llm_job_pause / resume / cancel / drop, and a job's
 * options.  The worker that runs the jobs is in job_worker.c, how it is
 * started in job_launch.c.
 */
#include "llamagpu.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(llm_job_create);
PG_FUNCTION_INFO_V1(llm_job_pause);
PG_FUNCTION_INFO_V1(llm_job_resume);
PG_FUNCTION_INFO_V1(llm_job_cancel);
PG_FUNCTION_INFO_V1(llm_job_drop);

#define JOB_NAME_MAXLEN		63

/* A number from a job option, checked to be an integer in [min, max]. */
static int64
job_option_int(JsonbValue *v, const char *key, int64 min, int64 max)
{
	double		x;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("option \"%s\" must be a number", key)));
	x = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
										   NumericGetDatum(v->val.numeric)));
	if (x != floor(x) || x < min || x > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an integer between " INT64_FORMAT " and " INT64_FORMAT,
						key, min, max)));
	return (int64) x;
}

/*
 * A job's options: llm_generate's arguments by name (max_tokens,
 * temperature, top_p, top_k, seed, stop), its options (min_p, ..., cache,
 * priority), and batch_size.  Absent arguments take llm_generate's defaults.
 */
void
JobOptionsToArgs(Jsonb *options, const char *model, GenerateArgs *args, int *batch_size)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		rest = false;

	memset(args, 0, sizeof(*args));
	args->model = model ? pstrdup(model) : NULL;
	args->has_max_tokens = args->has_temperature = args->has_top_p = args->has_top_k = true;
	args->max_tokens = 256;
	args->temperature = 0.8;
	args->top_p = 0.95;
	args->top_k = 40;
	if (batch_size)
		*batch_size = JOB_BATCH_SIZE_DEFAULT;
	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		JsonbValue	k;

		if (tok != WJB_KEY)
			continue;
		k = v;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "max_tokens") == 0)
			args->max_tokens = (int32) job_option_int(&v, key, PG_INT32_MIN, PG_INT32_MAX);
		else if (strcmp(key, "top_k") == 0)
			args->top_k = (int32) job_option_int(&v, key, PG_INT32_MIN, PG_INT32_MAX);
		else if (strcmp(key, "seed") == 0)
		{
			args->has_seed = true;
			args->seed = job_option_int(&v, key, PG_INT64_MIN, PG_INT64_MAX);
		}
		else if (batch_size && strcmp(key, "batch_size") == 0)
			*batch_size = (int) job_option_int(&v, key, 1, JOB_BATCH_SIZE_MAX);
		else if (strcmp(key, "temperature") == 0 || strcmp(key, "top_p") == 0)
		{
			double		x;

			if (v.type != jbvNumeric)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"%s\" must be a number", key)));
			x = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
												   NumericGetDatum(v.val.numeric)));
			if (key[0] == 't' && key[1] == 'e')
				args->temperature = x;
			else
				args->top_p = x;
		}
		else if (strcmp(key, "stop") == 0)
		{
			JsonbIterator *ait;
			JsonbValue	e;
			List	   *stops = NIL;
			Datum	   *elems;
			int			i = 0;
			ListCell   *lc;

			if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"stop\" must be an array of strings")));
			ait = JsonbIteratorInit(v.val.binary.data);
			while ((tok = JsonbIteratorNext(&ait, &e, true)) != WJB_DONE)
			{
				if (tok != WJB_ELEM)
					continue;
				if (e.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("option \"stop\" must be an array of strings")));
				stops = lappend(stops, cstring_to_text_with_len(e.val.string.val, e.val.string.len));
			}
			elems = palloc(sizeof(Datum) * Max(list_length(stops), 1));
			foreach(lc, stops)
				elems[i++] = PointerGetDatum(lfirst(lc));
			args->stop = construct_array(elems, i, TEXTOID, -1, false, TYPALIGN_INT);
		}
		else
		{
			/* an llm_generate option: checked when the request is built */
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
			rest = true;
		}
	}
	if (rest)
		args->options = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* A required text argument. */
static char *
required_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	char	   *s;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	s = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("%s must not be empty", name)));
	return s;
}

/* Whether source is a query rather than a table name. */
static bool
source_is_query(const char *source)
{
	static const char *const starts[] = {"select", "with", "values", "table", "("};

	while (*source == ' ' || *source == '\t' || *source == '\n' || *source == '\r')
		source++;
	for (int i = 0; i < lengthof(starts); i++)
	{
		size_t		n = strlen(starts[i]);

		if (pg_strncasecmp(source, starts[i], n) == 0 &&
			(n == 1 || source[n] == '\0' || !(isalnum((unsigned char) source[n]) || source[n] == '_')))
			return true;
	}
	return false;
}

/* A table name to its OID, with the error a user expects. */
static Oid
table_oid(const char *name, const char *what)
{
	List	   *names;
	Oid			relid;

	names = stringToQualifiedNameList(name);
	relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("%s \"%s\" does not exist", what, name)));
	return relid;
}

/* A column's number, or an error naming the table. */
static AttrNumber
column_attnum(Oid relid, const char *column, Oid *type, int32 *typmod)
{
	AttrNumber	att = get_attnum(relid, column);
	Oid			collation;

	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, get_rel_name(relid))));
	get_atttypetypmodcoll(relid, att, type, typmod, &collation);
	return att;
}

/* Error unless the current user has priv on the column. */
static void
check_column_priv(Oid relid, AttrNumber att, AclMode priv, const char *column, const char *privname)
{
	if (pg_attribute_aclcheck(relid, att, GetUserId(), priv) != ACLCHECK_OK &&
		pg_class_aclcheck(relid, GetUserId(), priv) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s column \"%s\" of table \"%s\"",
						privname, column, get_rel_name(relid)),
				 errdetail("A job runs as the role that creates it.")));
}

/*
 * llm_job_create(name, source, id_column, prompt, target_table,
 * target_column, model, options) RETURNS bigint
 */
Datum
llm_job_create(PG_FUNCTION_ARGS)
{
	char	   *name = required_arg(fcinfo, 0, "job name");
	char	   *source = required_arg(fcinfo, 1, "source");
	char	   *id_column = required_arg(fcinfo, 2, "id_column");
	char	   *prompt = required_arg(fcinfo, 3, "prompt");
	char	   *target = required_arg(fcinfo, 4, "target_table");
	char	   *target_column = required_arg(fcinfo, 5, "target_column");
	char	   *model = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	Jsonb	   *options = PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7);
	Oid			source_relid = InvalidOid;
	Oid			target_relid;
	char	   *source_sql;
	char	   *check_sql;
	Oid			id_type;
	Oid			target_type;
	int32		target_typmod;
	AttrNumber	target_att;
	AttrNumber	target_id_att;
	Oid			target_id_type;
	int32		target_id_typmod;
	GenerateArgs args;
	GenerateRequest req;
	int			batch_size;
	int			ret;
	int64		id;
	bool		isnull;
	LlamagpuActAs save;
	Oid			types[14] = {TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, TEXTOID};
	Datum		values[14];
	char		nulls[14];

	if (strlen(name) > JOB_NAME_MAXLEN ||
		strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") != strlen(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid job name \"%s\"", name),
				 errdetail("Job names have 1 to %d characters: letters, digits, \"_\", \".\", \":\" and \"-\".",
						   JOB_NAME_MAXLEN)));

	/* the generation settings, checked and the model's use allowed, as for llm_generate */
	JobOptionsToArgs(options, model, &args, &batch_size);
	GenerateRequestBuild(&args, &req);

	/* the source: a table, or a query run as a subquery */
	if (source_is_query(source))
		source_sql = psprintf("(%s)", source);
	else
	{
		source_relid = table_oid(source, "source table");
		source_sql = quote_qualified_identifier(get_namespace_name(get_rel_namespace(source_relid)),
												get_rel_name(source_relid));
	}

	/* run the read once, returning nothing: names, types and privileges are checked */
	check_sql = psprintf("SELECT s.%s, (%s)::text FROM %s AS s ORDER BY 1 LIMIT 0",
						 quote_identifier(id_column), prompt, source_sql);
	SPI_connect();
	ret = SPI_execute(check_sql, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	id_type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);

	/* the target: the id to find the row by, the column to write */
	target_relid = table_oid(target, "target table");
	target_id_att = column_attnum(target_relid, id_column, &target_id_type, &target_id_typmod);
	target_att = column_attnum(target_relid, target_column, &target_type, &target_typmod);
	if (target_att == target_id_att)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target_column must not be the id column")));
	check_column_priv(target_relid, target_id_att, ACL_SELECT, id_column, "read");
	check_column_priv(target_relid, target_att, ACL_UPDATE, target_column, "update");
	/* a separate target gets a row inserted for every id it lacks */
	if (target_relid != source_relid)
	{
		check_column_priv(target_relid, target_id_att, ACL_INSERT, id_column, "insert into");
		check_column_priv(target_relid, target_att, ACL_INSERT, target_column, "insert into");
	}

	/* the row is written as the extension's tables' owner: users only read it */
	values[0] = CStringGetTextDatum(name);
	values[1] = ObjectIdGetDatum(GetUserId());
	values[2] = CStringGetTextDatum(source);
	values[3] = CStringGetTextDatum(source_sql);
	values[4] = CStringGetTextDatum(id_column);
	values[5] = CStringGetTextDatum(format_type_be_qualified(id_type));
	values[6] = CStringGetTextDatum(prompt);
	values[7] = CStringGetTextDatum(quote_qualified_identifier(get_namespace_name(get_rel_namespace(target_relid)),
															   get_rel_name(target_relid)));
	values[8] = CStringGetTextDatum(target_column);
	values[9] = CStringGetTextDatum(format_type_extended(target_type, target_typmod, FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
	values[10] = CStringGetTextDatum(req.model->name);
	values[11] = options ? JsonbPGetDatum(options) : (Datum) 0;
	values[12] = CStringGetTextDatum(GetConfigOption("search_path", false, false));
	memset(nulls, ' ', sizeof(nulls));
	nulls[11] = options ? ' ' : 'n';

	LlamagpuActAsOwner("llm_jobs", &save);
	ret = SPI_execute_with_args("SELECT 1 FROM llamagpu.llm_jobs WHERE name = $1",
								1, types, values, NULL, false, 1);
	if (ret == SPI_OK_SELECT && SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("job \"%s\" already exists", name),
				 errhint("Choose another name, or drop the old job with llamagpu.llm_job_drop('%s').", name)));
	ret = SPI_execute_with_args("INSERT INTO llamagpu.llm_jobs (name, owner, source, source_sql, id_column, "
								" id_type, prompt, target_table, target_column, target_type, model, "
								" options, search_path) "
								"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
								13, types, values, nulls, false, 1);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not insert into llm_jobs: %s", SPI_result_code_string(ret));
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	LlamagpuActAsUser(&save);
	SPI_finish();

	LlamagpuJobWakeAtCommit();
	PG_RETURN_INT64(id);
}

/*
 * Change a job's state from one of `from` to `to` (NULL: delete it), as
 * the job's owner or a member of llm_admin.
 */
static void
job_transition(FunctionCallInfo fcinfo, const char *const *from, const char *to, const char *verb)
{
	char	   *name = required_arg(fcinfo, 0, "job name");
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	Oid			job_owner;
	Oid			admin = get_role_oid("llm_admin", true);
	char	   *state;
	bool		isnull;
	bool		allowed = false;
	LlamagpuActAs save;
	int			ret;

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	LlamagpuActAsOwner("llm_jobs", &save);
	/* the row lock orders us after a batch the worker is committing */
	ret = SPI_execute_with_args("SELECT owner, state FROM llamagpu.llm_jobs WHERE name = $1 FOR UPDATE",
								1, types, values, NULL, false, 1);
	LlamagpuActAsUser(&save);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("job \"%s\" does not exist", name),
				 errhint("See the jobs in llamagpu.llm_stat_jobs.")));
	job_owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

	if (superuser() || (OidIsValid(admin) && is_member_of_role(GetUserId(), admin)))
		allowed = true;
	else if (SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job_owner)) &&
			 is_member_of_role(GetUserId(), job_owner))
		allowed = true;
	if (!allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s job \"%s\"", verb, name),
				 errdetail("Only the job's owner and members of llm_admin may %s it.", verb)));

	{
		bool		ok = false;

		for (int i = 0; from[i]; i++)
			if (strcmp(state, from[i]) == 0)
				ok = true;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot %s job \"%s\" because it is %s", verb, name, state)));
	}

	LlamagpuActAsOwner("llm_jobs", &save);
	if (to == NULL)
		ret = SPI_execute_with_args("DELETE FROM llamagpu.llm_jobs WHERE name = $1",
									1, types, values, NULL, false, 0);
	else
	{
		values[1] = CStringGetTextDatum(to);
		ret = SPI_execute_with_args("UPDATE llamagpu.llm_jobs SET state = $2, updated_at = now(), "
									" finished_at = CASE WHEN $2 = 'cancelled' THEN now() END "
									"WHERE name = $1",
									2, types, values, NULL, false, 0);
	}
	LlamagpuActAsUser(&save);
	if (ret < 0)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	SPI_finish();

	if (to && strcmp(to, "running") == 0)
		LlamagpuJobWakeAtCommit();
}

/* llm_job_pause(name): stop after the batch in progress. */
Datum
llm_job_pause(PG_FUNCTION_ARGS)
{
	static const char *const from[] = {"running", NULL};

	job_transition(fcinfo, from, "paused", "pause");
	PG_RETURN_VOID();
}

/* llm_job_resume(name): go on from where a paused or failed job stopped. */
Datum
llm_job_resume(PG_FUNCTION_ARGS)
{
	static const char *const from[] = {"paused", "failed", NULL};

	job_transition(fcinfo, from, "running", "resume");
	PG_RETURN_VOID();
}

/* llm_job_cancel(name): stop for good after the batch in progress. */
Datum
llm_job_cancel(PG_FUNCTION_ARGS)
{
	static const char *const from[] = {"running", "paused", "failed", NULL};

	job_transition(fcinfo, from, "cancelled", "cancel");
	PG_RETURN_VOID();
}

/* llm_job_drop(name): forget a job that does not run, and its failures. */
Datum
llm_job_drop(PG_FUNCTION_ARGS)
{
	static const char *const from[] = {"paused", "failed", "cancelled", "done", NULL};

	job_transition(fcinfo, from, NULL, "drop");
	PG_RETURN_VOID();
}
