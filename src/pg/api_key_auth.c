/*
 * api_key_auth.c — checking an API key a request presents.
 *
 * llm_api_key_authenticate(key) is what llm_pre_request() calls with the
 * key from the request's headers.  It reads the key's row as the table's
 * owner (the caller, PostgREST's anonymous role, can read neither the hash
 * nor the salt), checks the secret against the hash in constant time, then
 * revocation and expiry, and makes the key the transaction's key
 * (request_key.c) so quotas and usage rows can name it.  It returns the
 * key's role; switching to it is left to llm_pre_request(), because a role
 * cannot be switched inside a SECURITY DEFINER context and the switch must
 * be checked against the session's (the authenticator's) memberships.
 *
 * Every failure is SQLSTATE class 28 (invalid authorization), which
 * llm_pre_request turns into HTTP 401.  The checks come in an order that
 * tells nothing to someone without the secret: an unknown prefix and a
 * wrong secret give the same error, and only a holder of the secret learns
 * that the key was revoked or has expired.
 */
#include "llamagpu.h"

#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

static void not_valid(void) pg_attribute_noreturn();

/* The error for an unknown prefix and for a wrong secret alike. */
static void
not_valid(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PASSWORD),
			 errmsg("API key is not valid"),
			 errdetail("No key of this database has that prefix and secret."),
			 errhint("Check that the whole key was sent; a rotated key's old secret no longer works.")));
}

/*
 * The lookup by prefix, planned once per backend: a request's check is one
 * index probe, and planning would cost more than the rest of it.
 */
static SPIPlanPtr
lookup_plan(void)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};

	if (plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("SELECT id, name, role, salt, hash, revoked_at IS NOT NULL, "
									"  expires_at IS NOT NULL AND expires_at <= now(), "
									"  coalesce(requests_per_minute, 0), coalesce(tokens_per_day, 0), "
									"  revoked_at::text, expires_at::text "
									"FROM llamagpu.llm_api_keys WHERE prefix = $1",
									1, types);

		if (p == NULL)
			elog(ERROR, "could not prepare the API key lookup: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		plan = p;
	}
	return plan;
}

PG_FUNCTION_INFO_V1(llm_api_key_authenticate);

/*
 * llm_api_key_authenticate(key text) RETURNS regrole: check key and make it
 * the current transaction's key; its role.
 */
Datum
llm_api_key_authenticate(PG_FUNCTION_ARGS)
{
	text	   *arg;
	ApiKeyParts parts;
	Datum		values[1];
	LlamagpuActAs save;
	int			ret;
	bool		found;
	uint8		salt[API_KEY_SALT_LEN];
	uint8		stored[API_KEY_HASH_LEN];
	uint8		hash[API_KEY_HASH_LEN];
	LlamagpuApiKey key;
	const LlamagpuApiKey *current;
	bool		isnull;
	bool		revoked = false;
	bool		expired = false;
	char	   *revoked_at = NULL;
	char	   *expires_at = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("API key must not be null")));
	arg = PG_GETARG_TEXT_PP(0);
	ApiKeyParse(VARDATA_ANY(arg), VARSIZE_ANY_EXHDR(arg), &parts);

	memset(&key, 0, sizeof(key));
	values[0] = CStringGetTextDatum(parts.prefix);
	SPI_connect();
	LlamagpuActAsOwner("llm_api_keys", &save);
	ret = SPI_execute_plan(lookup_plan(), values, NULL, true, 1);
	LlamagpuActAsUser(&save);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read llm_api_keys: %s", SPI_result_code_string(ret));
	found = SPI_processed == 1;
	if (found)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bytea	   *b;

		key.id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		strlcpy(key.name, SPI_getvalue(tup, desc, 2), sizeof(key.name));
		key.role = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		b = DatumGetByteaPP(SPI_getbinval(tup, desc, 4, &isnull));
		if (VARSIZE_ANY_EXHDR(b) != API_KEY_SALT_LEN)
			elog(ERROR, "API key \"%s\" has a salt of the wrong length", key.name);
		memcpy(salt, VARDATA_ANY(b), API_KEY_SALT_LEN);
		b = DatumGetByteaPP(SPI_getbinval(tup, desc, 5, &isnull));
		if (VARSIZE_ANY_EXHDR(b) != API_KEY_HASH_LEN)
			elog(ERROR, "API key \"%s\" has a hash of the wrong length", key.name);
		memcpy(stored, VARDATA_ANY(b), API_KEY_HASH_LEN);
		revoked = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		expired = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		key.requests_per_minute = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		key.tokens_per_day = DatumGetInt64(SPI_getbinval(tup, desc, 9, &isnull));
		revoked_at = SPI_getvalue(tup, desc, 10);
		expires_at = SPI_getvalue(tup, desc, 11);
	}
	else
	{
		/* hash anyway, so an unknown prefix takes as long as a wrong secret */
		memset(salt, 0, sizeof(salt));
		memset(stored, 0xff, sizeof(stored));
	}
	ApiKeyHash(salt, parts.secret, hash);
	explicit_bzero(parts.secret, sizeof(parts.secret));
	if (!ApiKeyHashEqual(hash, stored) || !found)
		not_valid();

	if (revoked)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("API key \"%s\" has been revoked", key.name),
				 errdetail("It was revoked at %s.", revoked_at)));
	if (expired)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("API key \"%s\" has expired", key.name),
				 errdetail("It expired at %s.", expires_at),
				 errhint("An llm_admin can extend it: UPDATE llamagpu.llm_api_keys SET expires_at = ... WHERE name = '%s'.",
						 key.name)));
	/* the role may have been dropped, or made a superuser, since */
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(key.role)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the role of API key \"%s\" no longer exists", key.name)));
	if (superuser_arg(key.role))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("API key \"%s\" cannot be used: its role \"%s\" is a superuser",
						key.name, GetUserNameFromId(key.role, false)),
				 errdetail("A key never acts as a superuser; the role was made one after the key was created.")));

	current = LlamagpuCurrentApiKey();
	if (current != NULL && current->id != key.id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("this transaction already authenticated with API key \"%s\"", current->name),
				 errdetail("A transaction acts for one key; usage and quotas are charged to it.")));
	LlamagpuSetCurrentApiKey(&key);
	ApiKeyUsageRecord(key.id);
	SPI_finish();
	PG_RETURN_OID(key.role);
}
