/*
 * request_key.c — the API key the current transaction authenticated with.
 *
 * PostgREST runs each HTTP request in one transaction: llm_pre_request()
 * checks the key, switches to its role and records the key here, so quotas,
 * rate limits and usage rows can name it.  The record lives in backend
 * memory, not in a setting, because a setting can be changed by any SQL the
 * client sends; and it ends with the transaction, because the next request
 * on the same connection may come from someone else.
 *
 * A parallel worker runs part of its leader's query (llm_generate and
 * llm_embed are PARALLEL SAFE), so it must see the leader's key too.
 * Postgres copies only settings, snapshots and a few other things to
 * workers, and a setting would be forgeable; so the leader also publishes
 * its key in shared memory, in the slot of its backend ID, stamped with its
 * PID, and a worker reads its leader's slot (ParallelLeaderBackendId) and
 * takes the key only if the stamp is its leader's PID (MyProc's lock group
 * leader).  Only this C code writes the slots, so SQL cannot forge a key;
 * a slot is cleared when its transaction ends, and the PID check keeps a
 * later backend with the same ID from reading a stale one.
 */
#include "llamagpu.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"

/* One backend's published key. */
typedef struct RequestKeySlot
{
	slock_t		mutex;
	int			pid;			/* the backend that published it; 0: none */
	LlamagpuApiKey key;
} RequestKeySlot;

static LlamagpuApiKey current_key;
static bool have_key = false;
static bool callback_registered = false;
static RequestKeySlot *key_slots = NULL;	/* [MaxBackends + 1], by backend ID */
static LlamagpuApiKey worker_key;	/* a parallel worker's copy of its leader's */

/* Shared memory for the slots: one per backend ID (1..MaxBackends). */
static Size
request_key_shmem_size(void)
{
	return mul_size(MaxBackends + 1, sizeof(RequestKeySlot));
}

/* Reserve the slots (shmem_request_hook). */
void
RequestKeyShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(request_key_shmem_size()));
}

/* Create or attach to the slots (shmem_startup_hook, AddinShmemInitLock held). */
void
RequestKeyShmemInit(void)
{
	bool		found;

	key_slots = ShmemInitStruct("llamagpu request keys", request_key_shmem_size(), &found);
	if (!found)
	{
		memset(key_slots, 0, request_key_shmem_size());
		for (int i = 0; i <= MaxBackends; i++)
			SpinLockInit(&key_slots[i].mutex);
	}
}

/* Publish this backend's key (NULL: none) for its parallel workers. */
static void
publish(const LlamagpuApiKey *key)
{
	RequestKeySlot *slot;

	if (key_slots == NULL || MyBackendId < 1 || MyBackendId > MaxBackends)
		return;
	slot = &key_slots[MyBackendId];
	SpinLockAcquire(&slot->mutex);
	if (key != NULL)
	{
		slot->key = *key;
		slot->pid = MyProcPid;
	}
	else
		slot->pid = 0;
	SpinLockRelease(&slot->mutex);
}

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
			if (have_key)
				publish(NULL);
			have_key = false;
			break;
		default:
			break;
	}
}

/* A parallel worker: its leader's key, or NULL. */
static const LlamagpuApiKey *
leader_key(void)
{
	RequestKeySlot *slot;
	int			leader_pid;
	bool		found = false;

	if (key_slots == NULL || ParallelLeaderBackendId < 1 || ParallelLeaderBackendId > MaxBackends ||
		MyProc == NULL || MyProc->lockGroupLeader == NULL)
		return NULL;
	leader_pid = MyProc->lockGroupLeader->pid;
	slot = &key_slots[ParallelLeaderBackendId];
	SpinLockAcquire(&slot->mutex);
	if (slot->pid != 0 && slot->pid == leader_pid)
	{
		worker_key = slot->key;
		found = true;
	}
	SpinLockRelease(&slot->mutex);
	return found ? &worker_key : NULL;
}

/* The key of the current transaction, or NULL (llamagpu.h). */
const LlamagpuApiKey *
LlamagpuCurrentApiKey(void)
{
	if (IsParallelWorker())
		return leader_key();
	return have_key ? &current_key : NULL;
}

/* Set it (NULL clears) for this transaction and its parallel workers (llamagpu.h). */
void
LlamagpuSetCurrentApiKey(const LlamagpuApiKey *key)
{
	/* a worker cannot change its leader's key (nor authenticate: that is PARALLEL UNSAFE) */
	if (IsParallelWorker())
		elog(ERROR, "cannot set the API key in a parallel worker");
	if (!callback_registered)
	{
		RegisterXactCallback(request_key_xact_callback, NULL);
		callback_registered = true;
	}
	if (key == NULL)
	{
		if (have_key)
			publish(NULL);
		have_key = false;
		return;
	}
	current_key = *key;
	have_key = true;
	publish(key);
}
