/*
 * response_cache.c — the opt-in response cache: greedy requests answered
 * from llamagpu.response_cache instead of the engine, and llm_cache_clear.
 *
 * Only greedy requests (temperature 0) are cached: their output is a
 * function of the model file, the prompt and the settings, which the key
 * (sha256 of a canonical form) covers.  The table belongs to the extension:
 * users cannot write it, so nobody can plant an answer for someone else;
 * the lookups and writes below run as the table's owner.
 *
 * Writes happen in the caller's transaction, so they are skipped where a
 * transaction may not write (parallel mode, read-only transactions, hot
 * standby).  They must also never make a session wait: two sessions caching
 * the same key would otherwise queue on the row (or deadlock, inserting keys
 * in opposite orders).  A non-blocking lock on the key decides who writes;
 * the loser skips the write (a hit then goes uncounted).  Hit counts and
 * evictions skip rows another transaction holds, for the same reason.
 */
#include "llamagpu.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "access/htup_details.h"
#include "catalog/pg_class.h"

PG_FUNCTION_INFO_V1(llm_cache_clear);

/* advisory lock tags with this field4 are ours (user locks use 1 and 2) */
#define CACHE_LOCKTAG_FIELD4	0x4C47

#define CACHE_KEY_VERSION	"llamagpu response cache 1"

/* The key: sha256 over version, model identity, prompt and the key fields. */
void
ResponseCacheKey(GenerateRequest *req, const char *prompt, uint8 *key)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	StringInfoData buf;

	initStringInfo(&buf);
	EngineField(&buf, "version", CACHE_KEY_VERSION);
	EngineField(&buf, "model", req->model->name);
	EngineField(&buf, "sha256", req->model->sha256 ? req->model->sha256 : "");
	EngineField(&buf, "prompt", prompt);
	appendBinaryStringInfo(&buf, req->key_fields.data, req->key_fields.len);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_final(ctx, key, 32) < 0)
		elog(ERROR, "could not compute SHA-256");
	pg_cryptohash_free(ctx);
	pfree(buf.data);
}

/* Whether this transaction may write the cache at all. */
static bool
cache_writable(void)
{
	return !IsInParallelMode() && !XactReadOnly && !RecoveryInProgress();
}

/* Try to take our transaction-level lock on key without waiting. */
static bool
cache_try_lock(const uint8 *key)
{
	LOCKTAG		tag;
	uint32		k1;
	uint32		k2;

	memcpy(&k1, key, 4);
	memcpy(&k2, key + 4, 4);
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, k1, k2, CACHE_LOCKTAG_FIELD4);
	return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * Run one statement on the cache table as its owner; the result (for a
 * SELECT, the first column of the first row) is copied out, or NULL.
 */
static char *
cache_exec(const char *sql, int nargs, Oid *types, Datum *values, bool read_only)
{
	LlamagpuActAs save;
	char	   *result = NULL;
	MemoryContext outer = CurrentMemoryContext;
	int			ret;

	if (!OidIsValid(LlamagpuRelationOwner("response_cache")))
		return NULL;
	LlamagpuActAsOwner("response_cache", &save);
	SPI_connect();
	ret = SPI_execute_with_args(sql, nargs, types, values, NULL, read_only, 1);
	if (ret < 0)
		elog(ERROR, "response cache statement failed: %s", SPI_result_code_string(ret));
	if (SPI_tuptable && SPI_processed > 0)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v)
			result = MemoryContextStrdup(outer, v);
	}
	SPI_finish();
	LlamagpuActAsUser(&save);
	return result;
}

/* A bytea datum of the key. */
static Datum
key_datum(const uint8 *key)
{
	bytea	   *b = palloc(VARHDRSZ + 32);

	SET_VARSIZE(b, VARHDRSZ + 32);
	memcpy(VARDATA(b), key, 32);
	return PointerGetDatum(b);
}

/* The cached output for key (UTF-8), or NULL; a hit is counted when it can be. */
char *
ResponseCacheLookup(GenerateRequest *req, const uint8 *key)
{
	Oid			types[1] = {BYTEAOID};
	Datum		values[1];
	char	   *output;

	values[0] = key_datum(key);
	output = cache_exec("SELECT output FROM llamagpu.response_cache WHERE key = $1",
						1, types, values, true);
	if (output == NULL)
		return NULL;
	/* the output is stored in the database encoding: back to UTF-8 */
	output = LlamagpuUtf8FromText(cstring_to_text(output));
	if (cache_writable() && cache_try_lock(key))
		(void) cache_exec("UPDATE llamagpu.response_cache "
						  "SET hits = hits + 1, last_used = clock_timestamp() "
						  "WHERE key = (SELECT key FROM llamagpu.response_cache WHERE key = $1 "
						  "             FOR UPDATE SKIP LOCKED)",
						  1, types, values, false);
	return output;
}

/* Store an output (UTF-8), unless the transaction may not write or another one is writing it. */
void
ResponseCacheStore(GenerateRequest *req, const uint8 *key, const char *output, int len)
{
	Oid			types[3] = {BYTEAOID, TEXTOID, TEXTOID};
	Datum		values[3];

	if (!cache_writable() || !cache_try_lock(key))
		return;
	values[0] = key_datum(key);
	values[1] = CStringGetTextDatum(req->model->name);
	values[2] = PointerGetDatum(LlamagpuTextFromUtf8(output, len));
	(void) cache_exec("INSERT INTO llamagpu.response_cache (key, model, output, created_at, last_used) "
					  "VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp()) ON CONFLICT (key) DO NOTHING",
					  3, types, values, false);

	/* over the limit: the least recently used go, skipping rows others hold */
	if (llamagpu_response_cache_max_rows > 0)
	{
		Oid			itypes[1] = {INT4OID};
		Datum		ivalues[1] = {Int32GetDatum(llamagpu_response_cache_max_rows)};

		(void) cache_exec("DELETE FROM llamagpu.response_cache WHERE key IN ("
						  " SELECT key FROM llamagpu.response_cache ORDER BY last_used DESC OFFSET $1"
						  " FOR UPDATE SKIP LOCKED)",
						  1, itypes, ivalues, false);
	}
}

/* llm_cache_clear() RETURNS bigint: delete every cached response. */
Datum
llm_cache_clear(PG_FUNCTION_ARGS)
{
	int64		n;
	int			ret;

	SPI_connect();
	ret = SPI_execute("DELETE FROM llamagpu.response_cache", false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not clear the response cache: %s", SPI_result_code_string(ret));
	n = (int64) SPI_processed;
	SPI_finish();
	PG_RETURN_INT64(n);
}
