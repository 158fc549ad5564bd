/*
 * llamagpu.c — module entry point and shared memory.
 */
#include "llamagpu.h"

#include "postmaster/bgworker.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_MODULE_MAGIC;

LlamagpuShared *llamagpu_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/* Reserve the shared state. */
static void
llamagpu_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LlamagpuShared)));
	LlamagpuQuotaShmemRequest();
	LlamagpuUsageShmemRequest();
	RequestAddinShmemSpace(LlamagpuDownloadsShmemSize());
	RequestKeyShmemRequest();
}

/* Create or attach to the shared state. */
static void
llamagpu_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LlamagpuShmemInit();
}

/* Attach to the shared state, creating it the first time. */
void
LlamagpuShmemInit(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	llamagpu_shared = ShmemInitStruct("llamagpu", sizeof(LlamagpuShared), &found);
	if (!found)
	{
		memset(llamagpu_shared, 0, sizeof(LlamagpuShared));
		SpinLockInit(&llamagpu_shared->mutex);
	}
	LlamagpuQuotaShmemInit();
	LlamagpuUsageShmemInit();
	LlamagpuDownloadsShmemInit();
	RequestKeyShmemInit();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Fill in a dynamic background worker of llamagpu that connects to a
 * database and runs function (an exported entry point); the caller names
 * it and sets its arguments.  Never restarted by the postmaster: each
 * kind is launched again by whoever next has work for it.
 */
void
LlamagpuWorkerInit(BackgroundWorker *worker, const char *function, const char *type)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker->bgw_library_name, "llamagpu", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
}

/*
 * The owner of table llamagpu.relname (InvalidOid if there is none): the
 * extension's own tables are written as their owner, never as the user.
 */
Oid
LlamagpuRelationOwner(const char *relname)
{
	Oid			nsp = get_namespace_oid("llamagpu", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(rel))
		return InvalidOid;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rel));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Act as the owner of the extension's table relname, with search_path
 * pg_catalog: the extension's tables are written as their owner (a
 * superuser), and a user's search_path must not let a function or operator
 * of theirs run with those privileges.  LlamagpuActAsUser undoes it (an
 * ERROR undoes it too, with the transaction or subtransaction).
 */
void
LlamagpuActAsOwner(const char *relname, LlamagpuActAs *save)
{
	Oid			owner = LlamagpuRelationOwner(relname);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"llamagpu.%s\" does not exist", relname),
				 errhint("Create the extension in this database: CREATE EXTENSION llamagpu.")));
	GetUserIdAndSecContext(&save->userid, &save->sec);
	save->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(owner, save->sec | SECURITY_LOCAL_USERID_CHANGE);
}

/* Back to the user LlamagpuActAsOwner saved. */
void
LlamagpuActAsUser(LlamagpuActAs *save)
{
	SetUserIdAndSecContext(save->userid, save->sec);
	AtEOXact_GUC(true, save->nestlevel);
}

/*
 * Module load: settings always; shared memory and the supervisor only when
 * preloaded.  Nothing here starts threads or touches devices: the engine is
 * a separate process started by the supervisor.
 */
void
_PG_init(void)
{
	LlamagpuGucInit();
	PluginDropHookInit();

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = llamagpu_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = llamagpu_shmem_startup;

	LlamagpuSupervisorRegister();
	ApiKeyUsageShmemRegister();
}
