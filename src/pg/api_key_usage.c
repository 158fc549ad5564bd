/*
 * api_key_usage.c — when each API key was last used, in shared memory.
 *
 * PostgREST runs GET requests in READ ONLY transactions, and a request that
 * fails rolls back: an UPDATE of llm_api_keys.last_used_at in the request's
 * transaction would fail or be lost, and would also make every request of
 * one key queue on that key's row lock.  So a successful check of a key
 * notes the time here, in a small shared hash table keyed by (database,
 * key id); llm_stat_api_keys shows the later of this time and the table's,
 * and llm_api_keys_flush() copies the times into the table (run it from a
 * scheduler if the times should survive a server restart).
 */
#include "llamagpu.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* keys whose times are held until a flush; more are not tracked until then */
#define API_KEY_USAGE_MAX	4096

typedef struct ApiKeyUsageTag
{
	Oid			dbid;
	int64		keyid;
} ApiKeyUsageTag;

typedef struct ApiKeyUsageEntry
{
	ApiKeyUsageTag tag;			/* hash key */
	TimestampTz last_used;
} ApiKeyUsageEntry;

static HTAB *usage_hash = NULL;
/* what this transaction's flush wrote, to forget when it commits */
static ApiKeyUsageEntry *flushed = NULL;
static int	n_flushed = 0;
static bool callback_registered = false;
static LWLock *usage_lock = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Reserve the table and its lock. */
static void
usage_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(hash_estimate_size(API_KEY_USAGE_MAX, sizeof(ApiKeyUsageEntry)));
	RequestNamedLWLockTranche("llamagpu_api_key_usage", 1);
}

/* Create or attach to the table. */
static void
usage_shmem_startup(void)
{
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(ApiKeyUsageTag);
	info.entrysize = sizeof(ApiKeyUsageEntry);
	usage_hash = ShmemInitHash("llamagpu api key usage", API_KEY_USAGE_MAX, API_KEY_USAGE_MAX,
							   &info, HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
	usage_lock = &(GetNamedLWLockTranche("llamagpu_api_key_usage"))->lock;
	LWLockRelease(AddinShmemInitLock);
}

/* Chain the shared memory hooks (from _PG_init, when preloaded). */
void
ApiKeyUsageShmemRegister(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = usage_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = usage_shmem_startup;
}

/* Note a key's use now; a later time never goes back. */
void
ApiKeyUsageRecord(int64 keyid)
{
	ApiKeyUsageTag tag;
	ApiKeyUsageEntry *e;
	TimestampTz now = GetCurrentTimestamp();

	if (usage_hash == NULL)		/* not preloaded: nothing is tracked */
		return;
	memset(&tag, 0, sizeof(tag));
	tag.dbid = MyDatabaseId;
	tag.keyid = keyid;
	LWLockAcquire(usage_lock, LW_EXCLUSIVE);
	/* a full table drops the time: the key still works, its time is older */
	e = hash_search(usage_hash, &tag, HASH_ENTER_NULL, NULL);
	if (e != NULL && e->last_used < now)
		e->last_used = now;
	LWLockRelease(usage_lock);
}

/* The time held for a key of this database; 0 if none. */
static TimestampTz
usage_lookup(int64 keyid)
{
	ApiKeyUsageTag tag;
	ApiKeyUsageEntry *e;
	TimestampTz t = 0;

	if (usage_hash == NULL)
		return 0;
	memset(&tag, 0, sizeof(tag));
	tag.dbid = MyDatabaseId;
	tag.keyid = keyid;
	LWLockAcquire(usage_lock, LW_SHARED);
	e = hash_search(usage_hash, &tag, HASH_FIND, NULL);
	if (e != NULL)
		t = e->last_used;
	LWLockRelease(usage_lock);
	return t;
}

PG_FUNCTION_INFO_V1(llm_api_key_last_used);

/*
 * llm_api_key_last_used(id bigint) RETURNS timestamptz: the last use of a
 * key not yet flushed to llm_api_keys; NULL if none.
 */
Datum
llm_api_key_last_used(PG_FUNCTION_ARGS)
{
	TimestampTz t = usage_lookup(PG_GETARG_INT64(0));

	if (t == 0)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(t);
}

/*
 * At commit, forget the times a flush wrote, unless a later use replaced
 * them meanwhile; at abort keep them, for the next flush.
 */
static void
usage_xact_callback(XactEvent event, void *arg)
{
	if (flushed == NULL)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		LWLockAcquire(usage_lock, LW_EXCLUSIVE);
		for (int i = 0; i < n_flushed; i++)
		{
			ApiKeyUsageEntry *e = hash_search(usage_hash, &flushed[i].tag, HASH_FIND, NULL);

			if (e != NULL && e->last_used == flushed[i].last_used)
				hash_search(usage_hash, &flushed[i].tag, HASH_REMOVE, NULL);
		}
		LWLockRelease(usage_lock);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		flushed = NULL;			/* TopTransactionContext goes with the transaction */
		n_flushed = 0;
	}
}

PG_FUNCTION_INFO_V1(llm_api_keys_flush);

/*
 * llm_api_keys_flush() RETURNS bigint: copy the held last-used times of
 * this database's keys into llm_api_keys.last_used_at and forget them; the
 * number of keys updated.  The times are forgotten when this transaction
 * commits; a time noted meanwhile stays held.
 */
Datum
llm_api_keys_flush(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS seq;
	ApiKeyUsageEntry *e;
	ApiKeyUsageEntry *copy;
	int			n = 0;
	int64		updated = 0;
	LlamagpuActAs save;

	if (usage_hash == NULL)
		PG_RETURN_INT64(0);

	/* a copy, so the lock is not held across SPI; it lives until commit */
	copy = MemoryContextAlloc(TopTransactionContext, sizeof(ApiKeyUsageEntry) * API_KEY_USAGE_MAX);
	LWLockAcquire(usage_lock, LW_SHARED);
	hash_seq_init(&seq, usage_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->tag.dbid == MyDatabaseId && n < API_KEY_USAGE_MAX)
			copy[n++] = *e;
	LWLockRelease(usage_lock);

	SPI_connect();
	LlamagpuActAsOwner("llm_api_keys", &save);
	for (int i = 0; i < n; i++)
	{
		Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
		Datum		values[2] = {Int64GetDatum(copy[i].tag.keyid), TimestampTzGetDatum(copy[i].last_used)};
		int			ret;

		ret = SPI_execute_with_args("UPDATE llamagpu.llm_api_keys SET last_used_at = $2 "
									"WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
									2, types, values, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "could not update llm_api_keys: %s", SPI_result_code_string(ret));
		updated += SPI_processed;
	}
	LlamagpuActAsUser(&save);
	SPI_finish();

	/* forget the times when the rows are committed (not before: a rollback keeps them) */
	if (!callback_registered)
	{
		RegisterXactCallback(usage_xact_callback, NULL);
		callback_registered = true;
	}
	flushed = copy;
	n_flushed = n;
	PG_RETURN_INT64(updated);
}
