/*
 * api_keys.c — creating, rotating and revoking API keys.
 *
 * The functions run as their caller (an llm_admin), so the checks below see
 * who is asking; the rows are written as the table's owner, because nobody
 * may write a key's salt and hash directly (a hand-written hash would be a
 * key for any role, past every check here).
 *
 * Whom a key may act as: never a superuser (a key is a bearer credential
 * sent over HTTP, and PostgREST's authenticator would have to be granted
 * the superuser role to switch to it, which makes the authenticator itself
 * a superuser); a member of llm_admin only when a superuser creates it (such
 * a key manages models, grants and other keys from anywhere the key is
 * sent, and outlives the admin's own login); and otherwise only a role the
 * caller is a member of, as Postgres asks of ALTER ... OWNER TO: handing out
 * a credential for a role is acting as it, so an llm_admin must not mint
 * keys for roles whose privileges it does not have.
 */
#include "llamagpu.h"

#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

/* The key's name, checked like the other llamagpu names. */
static char *
key_name_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *name;
	size_t		len;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("API key name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	len = strlen(name);
	if (len == 0 || len > 63 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid API key name \"%s\"", name),
				 errdetail("A key name has 1 to 63 characters, each a letter, a digit, \"_\", \".\", \":\" or \"-\".")));
	return name;
}

/* Refuse a role a key must not act as (see the file comment). */
static void
check_key_role(Oid role)
{
	Oid			admin = get_role_oid("llm_admin", true);
	const char *rolename;

	if (!OidIsValid(role) || !SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role of an API key must be an existing role")));
	rolename = GetUserNameFromId(role, false);
	if (superuser_arg(role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot create an API key for superuser role \"%s\"", rolename),
				 errdetail("A key is a bearer credential sent over HTTP, and PostgREST's authenticator would have to be granted the superuser role to switch to it."),
				 errhint("Create a key for a role that has only the privileges the application needs.")));
	if (OidIsValid(admin) && is_member_of_role(role, admin) && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may create an API key for role \"%s\"", rolename),
				 errdetail("Role \"%s\" is a member of llm_admin: its key could manage models, grants and other keys.",
						   rolename)));
	if (!superuser() && !is_member_of_role(GetUserId(), role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create an API key for role \"%s\"", rolename),
				 errdetail("A key acts as its role, so only members of the role may create one."),
				 errhint("A superuser can run: GRANT \"%s\" TO \"%s\";",
						 rolename, GetUserNameFromId(GetUserId(), false))));
}

/* Whether a key with this prefix exists (the prefix must be unique). */
static bool
prefix_taken(const char *prefix)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(prefix)};
	int			ret;

	ret = SPI_execute_with_args("SELECT 1 FROM llamagpu.llm_api_keys WHERE prefix = $1",
								1, types, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read llm_api_keys: %s", SPI_result_code_string(ret));
	return SPI_processed > 0;
}

/*
 * A new key whose prefix no key has (run as the table's owner, in SPI).
 * 72 random bits make a collision all but impossible; it is checked anyway.
 */
static void
new_key(char *key, ApiKeyParts *parts, uint8 *salt, uint8 *hash)
{
	for (int tries = 0;; tries++)
	{
		ApiKeyGenerate(key, parts, salt, hash);
		if (!prefix_taken(parts->prefix))
			return;
		if (tries == 3)
			elog(ERROR, "could not find an unused API key prefix");
	}
}

/* A bytea datum of len bytes. */
static Datum
bytea_datum(const uint8 *data, int len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return PointerGetDatum(b);
}

PG_FUNCTION_INFO_V1(llm_create_api_key);

/*
 * llm_create_api_key(name text, role regrole, expires_at timestamptz,
 * requests_per_minute int, tokens_per_day bigint) RETURNS text: a new key;
 * its text is returned this once and never stored.
 */
Datum
llm_create_api_key(PG_FUNCTION_ARGS)
{
	char	   *name = key_name_arg(fcinfo, 0);
	Oid			role;
	char		key[API_KEY_LEN + 1];
	ApiKeyParts parts;
	uint8		salt[API_KEY_SALT_LEN];
	uint8		hash[API_KEY_HASH_LEN];
	Oid			types[8] = {TEXTOID, OIDOID, TEXTOID, BYTEAOID, BYTEAOID, TIMESTAMPTZOID, INT4OID, INT8OID};
	Datum		values[8];
	char		nulls[8];
	LlamagpuActAs save;
	int			ret;
	text	   *result;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("role of an API key must not be null")));
	role = PG_GETARG_OID(1);
	check_key_role(role);
	if (!PG_ARGISNULL(2) && PG_GETARG_TIMESTAMPTZ(2) <= GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at must be in the future")));
	if (!PG_ARGISNULL(3) && PG_GETARG_INT32(3) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("requests_per_minute must be positive"),
				 errhint("Pass NULL for no limit of the key's own.")));
	if (!PG_ARGISNULL(4) && PG_GETARG_INT64(4) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tokens_per_day must be positive"),
				 errhint("Pass NULL for no limit of the key's own.")));

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(name);
	values[1] = ObjectIdGetDatum(role);
	values[2] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	for (int i = 2; i < 5; i++)
	{
		nulls[i + 3] = PG_ARGISNULL(i) ? 'n' : ' ';
		values[i + 3] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
	}

	SPI_connect();
	LlamagpuActAsOwner("llm_api_keys", &save);
	ret = SPI_execute_with_args("SELECT 1 FROM llamagpu.llm_api_keys WHERE name = $1",
								1, types, values, NULL, false, 1);
	if (ret == SPI_OK_SELECT && SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("API key \"%s\" already exists", name),
				 errhint("Choose another name; rotate the existing key with llamagpu.llm_rotate_api_key('%s').", name)));
	new_key(key, &parts, salt, hash);
	values[3] = bytea_datum(salt, API_KEY_SALT_LEN);
	values[4] = bytea_datum(hash, API_KEY_HASH_LEN);
	ret = SPI_execute_with_args("INSERT INTO llamagpu.llm_api_keys (name, role, created_by, salt, hash, "
								"  expires_at, requests_per_minute, tokens_per_day, prefix) "
								"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
								9, (Oid[]) {TEXTOID, OIDOID, TEXTOID, BYTEAOID, BYTEAOID, TIMESTAMPTZOID, INT4OID, INT8OID, TEXTOID},
								(Datum[]) {values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7],
									CStringGetTextDatum(parts.prefix)},
								(char[]) {nulls[0], nulls[1], nulls[2], nulls[3], nulls[4], nulls[5], nulls[6], nulls[7], ' '},
								false, 0);
	if (ret != SPI_OK_INSERT || SPI_processed != 1)
		elog(ERROR, "could not insert into llm_api_keys: %s", SPI_result_code_string(ret));
	LlamagpuActAsUser(&save);
	SPI_finish();

	result = cstring_to_text(key);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(parts.secret, sizeof(parts.secret));
	PG_RETURN_TEXT_P(result);
}

/*
 * Read key name's role and state for update, as the owner; an error when
 * there is no such key or the caller may not see it.
 */
static Oid
lock_key(const char *name, bool *revoked, bool *expired)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	Oid			role;
	bool		isnull;
	int			ret;

	ret = SPI_execute_with_args("SELECT role, revoked_at IS NOT NULL, "
								"  expires_at IS NOT NULL AND expires_at <= now() "
								"FROM llamagpu.llm_api_keys WHERE name = $1 FOR UPDATE",
								1, types, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read llm_api_keys: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("API key \"%s\" does not exist", name)));
	role = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*revoked = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	*expired = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	return role;
}

/* Whether the caller is a member of a key's role (a dropped role: no). */
static bool
member_of_key_role(Oid role)
{
	return SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)) &&
		is_member_of_role(GetUserId(), role);
}

PG_FUNCTION_INFO_V1(llm_revoke_api_key);

/*
 * llm_revoke_api_key(name text) RETURNS boolean: revoke a key (true), or
 * nothing if it was already revoked (false).  Members of llm_admin may
 * revoke any key and a member of a key's role its own, so a holder who
 * finds a key leaked need not wait for an administrator.  The key stops
 * working for transactions that start after this one commits.
 */
Datum
llm_revoke_api_key(PG_FUNCTION_ARGS)
{
	char	   *name = key_name_arg(fcinfo, 0);
	Oid			admin = get_role_oid("llm_admin", true);
	Oid			role;
	bool		revoked;
	bool		expired;
	LlamagpuActAs save;
	int			ret;

	SPI_connect();
	LlamagpuActAsOwner("llm_api_keys", &save);
	role = lock_key(name, &revoked, &expired);
	LlamagpuActAsUser(&save);
	if (!(OidIsValid(admin) && is_member_of_role(GetUserId(), admin)) && !member_of_key_role(role))
		/* the same error as for no key: a key one may not see is not there */
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("API key \"%s\" does not exist", name)));
	if (revoked)
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	LlamagpuActAsOwner("llm_api_keys", &save);
	ret = SPI_execute_with_args("UPDATE llamagpu.llm_api_keys SET revoked_at = now() WHERE name = $1",
								1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(name)}, NULL, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update llm_api_keys: %s", SPI_result_code_string(ret));
	LlamagpuActAsUser(&save);
	SPI_finish();
	PG_RETURN_BOOL(true);
}

PG_FUNCTION_INFO_V1(llm_rotate_api_key);

/*
 * llm_rotate_api_key(name text) RETURNS text: give a key a new prefix,
 * salt and secret, returned this once.  The old secret stops working when
 * this transaction commits; the key keeps its id, name, role, limits,
 * expiry and usage history.  For a rollover without a moment where neither
 * secret works, create a second key, move the clients, revoke the first.
 */
Datum
llm_rotate_api_key(PG_FUNCTION_ARGS)
{
	char	   *name = key_name_arg(fcinfo, 0);
	Oid			role;
	bool		revoked;
	bool		expired;
	char		key[API_KEY_LEN + 1];
	ApiKeyParts parts;
	uint8		salt[API_KEY_SALT_LEN];
	uint8		hash[API_KEY_HASH_LEN];
	LlamagpuActAs save;
	int			ret;
	text	   *result;

	SPI_connect();
	LlamagpuActAsOwner("llm_api_keys", &save);
	role = lock_key(name, &revoked, &expired);
	LlamagpuActAsUser(&save);
	/* the checks of a new key: the role may have changed since */
	check_key_role(role);
	if (revoked)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("API key \"%s\" has been revoked", name),
				 errdetail("A revoked key stays revoked."),
				 errhint("Create a new key instead.")));
	if (expired)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("API key \"%s\" has expired", name),
				 errhint("Extend it first: UPDATE llamagpu.llm_api_keys SET expires_at = ... WHERE name = '%s'.", name)));

	LlamagpuActAsOwner("llm_api_keys", &save);
	new_key(key, &parts, salt, hash);
	ret = SPI_execute_with_args("UPDATE llamagpu.llm_api_keys SET prefix = $2, salt = $3, hash = $4, "
								"  rotated_at = now() WHERE name = $1",
								4, (Oid[]) {TEXTOID, TEXTOID, BYTEAOID, BYTEAOID},
								(Datum[]) {CStringGetTextDatum(name), CStringGetTextDatum(parts.prefix),
									bytea_datum(salt, API_KEY_SALT_LEN), bytea_datum(hash, API_KEY_HASH_LEN)},
								NULL, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update llm_api_keys: %s", SPI_result_code_string(ret));
	LlamagpuActAsUser(&save);
	SPI_finish();

	result = cstring_to_text(key);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(parts.secret, sizeof(parts.secret));
	PG_RETURN_TEXT_P(result);
}

PG_FUNCTION_INFO_V1(llm_current_api_key);

/*
 * llm_current_api_key() RETURNS text: the name of the key this transaction
 * authenticated with (llm_pre_request), or NULL.
 */
Datum
llm_current_api_key(PG_FUNCTION_ARGS)
{
	const LlamagpuApiKey *key = LlamagpuCurrentApiKey();

	if (key == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(key->name));
}
