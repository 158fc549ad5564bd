/*
 * tool_schema.c — Postgres functions as tools a model may call: the JSON
 * Schema of a function's arguments, from their names, types and defaults
 * (llm_tool_schema, used by llm_register_tool), and a registered tool's
 * OpenAI definition (for llm_chat's tools).
 */
#include "llamagpu.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(llm_tool_schema);

/* The kind of a type (domains are their base type); *elem: an array's element type. */
ToolKind
ToolTypeKind(Oid typid, Oid *elem)
{
	Oid			base = getBaseType(typid);

	*elem = InvalidOid;
	switch (base)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return TOOL_INTEGER;
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			return TOOL_NUMBER;
		case BOOLOID:
			return TOOL_BOOLEAN;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
		case UUIDOID:
		case INETOID:
		case CIDROID:
			return TOOL_STRING;
		case JSONOID:
		case JSONBOID:
			return TOOL_JSON;
		default:
			break;
	}
	if (type_is_enum(base))
		return TOOL_ENUM;
	if ((*elem = get_element_type(base)) != InvalidOid)
		return TOOL_ARRAY;
	if (type_is_rowtype(base) && base != RECORDOID)
		return TOOL_COMPOSITE;
	return TOOL_UNSUPPORTED;
}

/* The JSON Schema "format" of a string type, or NULL. */
static const char *
tool_format(Oid typid)
{
	switch (getBaseType(typid))
	{
		case DATEOID:
			return "date";
		case TIMEOID:
		case TIMETZOID:
			return "time";
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return "date-time";
		case UUIDOID:
			return "uuid";
		default:
			return NULL;
	}
}

/* Append a JSON string. */
static void
json_str(StringInfo out, const char *s)
{
	escape_json(out, s);
}

static void tool_type_schema(StringInfo out, Oid typid, const char *argname, int depth);

/* The labels of an enum type as a JSON array, in sort order. */
static void
enum_labels(StringInfo out, Oid enumtype)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(enumtype)};
	int			ret;

	SPI_connect();
	ret = SPI_execute_with_args("SELECT enumlabel::text FROM pg_catalog.pg_enum "
								"WHERE enumtypid = $1 ORDER BY enumsortorder",
								1, types, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	appendStringInfoChar(out, '[');
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		if (i > 0)
			appendStringInfoChar(out, ',');
		json_str(out, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	}
	appendStringInfoChar(out, ']');
	SPI_finish();
}

/* The attributes of a composite type as JSON Schema properties (all optional). */
static void
composite_schema(StringInfo out, Oid typid, const char *argname, int depth)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(getBaseType(typid), -1);
	bool		first = true;

	appendStringInfoString(out, "{\"type\": \"object\", \"properties\": {");
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (!first)
			appendStringInfoString(out, ", ");
		first = false;
		json_str(out, NameStr(att->attname));
		appendStringInfoString(out, ": ");
		tool_type_schema(out, att->atttypid, argname, depth + 1);
	}
	appendStringInfoString(out, "}, \"additionalProperties\": false}");
	ReleaseTupleDesc(desc);
}

/* The JSON Schema of one type; argname names the argument in errors. */
static void
tool_type_schema(StringInfo out, Oid typid, const char *argname, int depth)
{
	Oid			elem;
	const char *format;

	check_stack_depth();
	if (depth > 8)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("type of argument \"%s\" is nested too deeply for a tool parameter", argname)));
	switch (ToolTypeKind(typid, &elem))
	{
		case TOOL_INTEGER:
			appendStringInfoString(out, "{\"type\": \"integer\"");
			/* the bounds keep the model within the type; bigint's need no words */
			if (getBaseType(typid) == INT2OID)
				appendStringInfoString(out, ", \"minimum\": -32768, \"maximum\": 32767");
			else if (getBaseType(typid) == INT4OID)
				appendStringInfoString(out, ", \"minimum\": -2147483648, \"maximum\": 2147483647");
			appendStringInfoChar(out, '}');
			break;
		case TOOL_NUMBER:
			appendStringInfoString(out, "{\"type\": \"number\"}");
			break;
		case TOOL_BOOLEAN:
			appendStringInfoString(out, "{\"type\": \"boolean\"}");
			break;
		case TOOL_STRING:
			format = tool_format(typid);
			if (format)
				appendStringInfo(out, "{\"type\": \"string\", \"format\": \"%s\"}", format);
			else
				appendStringInfoString(out, "{\"type\": \"string\"}");
			break;
		case TOOL_ENUM:
			appendStringInfoString(out, "{\"type\": \"string\", \"enum\": ");
			enum_labels(out, getBaseType(typid));
			appendStringInfoChar(out, '}');
			break;
		case TOOL_JSON:
			appendStringInfoString(out, "{}");
			break;
		case TOOL_ARRAY:
			appendStringInfoString(out, "{\"type\": \"array\", \"items\": ");
			tool_type_schema(out, elem, argname, depth + 1);
			appendStringInfoChar(out, '}');
			break;
		case TOOL_COMPOSITE:
			composite_schema(out, typid, argname, depth);
			break;
		case TOOL_UNSUPPORTED:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("type %s of argument \"%s\" cannot be a tool parameter",
							format_type_be(typid), argname),
					 errhint("Tool parameters may be integers, numeric, real, text, boolean, json, jsonb, "
							 "date and time types, uuid, enums, composites and arrays of these; wrap the function in one taking such types.")));
	}
}


/* Read and check the signature of function fn (errors name what is wrong). */
void
ToolSignatureRead(Oid fn, ToolSignature *sig)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Form_pg_proc proc;
	Datum		d;
	bool		isnull;
	char	   *fname;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", fn)));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	fname = format_procedure_qualified(fn);
	if (proc->prokind != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a plain function", fname),
				 errdetail("Procedures, aggregates and window functions cannot be tools.")));
	if (OidIsValid(proc->provariadic))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("function %s has a VARIADIC argument", fname),
				 errhint("A tool's arguments are named JSON members; take an array argument instead.")));
	d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proargmodes, &isnull);
	if (!isnull)
	{
		ArrayType  *modes = DatumGetArrayTypeP(d);
		char	   *m = (char *) ARR_DATA_PTR(modes);

		for (int i = 0; i < ARR_DIMS(modes)[0]; i++)
			if (m[i] != PROARGMODE_IN)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
						 errmsg("function %s has OUT, INOUT, TABLE or VARIADIC arguments", fname),
						 errhint("A tool takes only IN arguments; return a composite type or jsonb for several results.")));
	}

	sig->schema = pstrdup(quote_identifier(get_namespace_name(proc->pronamespace)));
	sig->name = pstrdup(quote_identifier(NameStr(proc->proname)));
	sig->nargs = proc->pronargs;
	sig->ndefaults = proc->pronargdefaults;
	sig->retset = proc->proretset;
	sig->types = palloc(sizeof(Oid) * Max(sig->nargs, 1));
	sig->names = palloc0(sizeof(char *) * Max(sig->nargs, 1));
	memcpy(sig->types, proc->proargtypes.values, sizeof(Oid) * sig->nargs);

	d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proargnames, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n && i < sig->nargs; i++)
			if (!nulls[i])
				sig->names[i] = TextDatumGetCString(elems[i]);
	}
	for (int i = 0; i < sig->nargs; i++)
		if (sig->names[i] == NULL || sig->names[i][0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
					 errmsg("argument %d of function %s has no name", i + 1, fname),
					 errhint("A model calls tools with named arguments: give every argument a name.")));
	ReleaseSysCache(tup);
}

/*
 * llm_tool_schema(fn regprocedure) RETURNS jsonb: the JSON Schema of the
 * function's arguments: an object with one property per argument, those
 * without a default required, nothing else allowed.
 */
Datum
llm_tool_schema(PG_FUNCTION_ARGS)
{
	ToolSignature sig;
	StringInfoData out;
	bool		first = true;

	ToolSignatureRead(PG_GETARG_OID(0), &sig);
	initStringInfo(&out);
	appendStringInfoString(&out, "{\"type\": \"object\", \"properties\": {");
	for (int i = 0; i < sig.nargs; i++)
	{
		if (i > 0)
			appendStringInfoString(&out, ", ");
		json_str(&out, sig.names[i]);
		appendStringInfoString(&out, ": ");
		tool_type_schema(&out, sig.types[i], sig.names[i], 0);
	}
	appendStringInfoString(&out, "}, \"required\": [");
	for (int i = 0; i < sig.nargs - sig.ndefaults; i++)
	{
		if (!first)
			appendStringInfoString(&out, ", ");
		first = false;
		json_str(&out, sig.names[i]);
	}
	appendStringInfoString(&out, "], \"additionalProperties\": false}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

/*
 * The OpenAI definition of registered tool name, as JSON text, or NULL if
 * there is none.  Read as the current user (llm_user may read llm_tools).
 */
char *
ToolDefinitionJson(const char *name)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	char	   *result = NULL;
	MemoryContext outer = CurrentMemoryContext;
	int			ret;

	SPI_connect();
	ret = SPI_execute_with_args("SELECT pg_catalog.jsonb_build_object('type', 'function', 'function', "
								"pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object("
								"'name', t.name, 'description', t.description, 'parameters', t.parameters)))::text "
								"FROM llamagpu.llm_tools t WHERE t.name = $1",
								1, types, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		result = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return result;
}

