/*
 * job_launch.c — starting the per-database job worker (job_worker.c).
 *
 * A database with active jobs has a marker file, pg_llamagpu_jobs/<oid> in
 * the data directory, written before the creating transaction commits; the
 * worker removes it when no job is left to run.  Shared memory does not
 * survive a restart, the markers do: the supervisor starts a worker for each
 * marker when it starts, and checks again every few seconds, so jobs resume
 * after a crash or restart without anyone calling a function.  Shared
 * memory holds a slot per database with a worker, so that there is at most
 * one, and a request counter that tells a worker about to exit for lack of
 * jobs that a job was created or resumed meanwhile.
 */
#include "llamagpu.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/fd.h"

#define JOB_MARKER_DIR		"pg_llamagpu_jobs"
#define JOB_START_GRACE_MS	60000	/* a worker not running this long after launch failed */

static bool job_wake_pending = false;
static bool job_xact_callback_registered = false;

/* pg_llamagpu_jobs/<dboid>, relative to the data directory. */
void
LlamagpuJobMarkerPath(Oid dboid, char *path, size_t size)
{
	snprintf(path, size, "%s/%u", JOB_MARKER_DIR, dboid);
}

/* Create the marker of a database with active jobs (a failure only warns). */
void
LlamagpuJobMarkerWrite(Oid dboid)
{
	char		path[MAXPGPATH];
	int			fd;

	LlamagpuJobMarkerPath(dboid, path, sizeof(path));
	if (access(path, F_OK) == 0)
		return;
	(void) mkdir(JOB_MARKER_DIR, S_IRWXU);
	fd = open(path, O_CREAT | O_WRONLY | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", path),
				 errdetail("Jobs of this database will not resume by themselves after a restart.")));
	else
	{
		(void) pg_fsync(fd);
		close(fd);
	}
}

/* Register the worker process of a database. */
static bool
launch_worker(Oid dboid)
{
	BackgroundWorker worker;

	/* the supervisor relaunches it after a restart */
	LlamagpuWorkerInit(&worker, "llamagpu_job_worker_main", "llamagpu job worker");
	snprintf(worker.bgw_name, BGW_MAXLEN, "llamagpu job worker for database %u", dboid);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	return RegisterDynamicBackgroundWorker(&worker, NULL);
}

/*
 * Start the job worker of a database, or wake it if it runs: the bumped
 * request count tells a worker about to exit for lack of jobs to look again.
 */
void
LlamagpuJobWorkerEnsure(Oid dboid)
{
	LlamagpuJobSlot *slot = NULL;
	Latch	   *latch = NULL;
	bool		launch = false;
	TimestampTz now = GetCurrentTimestamp();

	if (llamagpu_shared == NULL)
		return;
	SpinLockAcquire(&llamagpu_shared->mutex);
	for (int i = 0; i < LLAMAGPU_MAX_JOB_WORKERS; i++)
		if (llamagpu_shared->jobs[i].dboid == dboid)
			slot = &llamagpu_shared->jobs[i];
	if (slot == NULL)
	{
		for (int i = 0; i < LLAMAGPU_MAX_JOB_WORKERS && slot == NULL; i++)
			if (llamagpu_shared->jobs[i].dboid == InvalidOid)
				slot = &llamagpu_shared->jobs[i];
		if (slot)
		{
			memset(slot, 0, sizeof(*slot));
			slot->dboid = dboid;
			slot->launched_at = now;
			launch = true;
		}
	}
	else if (slot->pid == 0 &&
			 TimestampDifferenceExceeds(slot->launched_at, now, JOB_START_GRACE_MS))
	{
		/* launched long ago and never ran: try again */
		slot->launched_at = now;
		launch = true;
	}
	if (slot)
	{
		slot->requests++;
		latch = slot->pid > 0 ? slot->latch : NULL;
	}
	SpinLockRelease(&llamagpu_shared->mutex);

	if (slot == NULL)
		ereport(WARNING,
				(errmsg("too many databases run llamagpu jobs"),
				 errdetail("At most %d databases may run jobs at the same time.", LLAMAGPU_MAX_JOB_WORKERS),
				 errhint("The job starts when another database's jobs end.")));
	if (latch)
		SetLatch(latch);
	if (launch && !launch_worker(dboid))
	{
		SpinLockAcquire(&llamagpu_shared->mutex);
		if (slot->dboid == dboid && slot->pid == 0)
			slot->dboid = InvalidOid;
		SpinLockRelease(&llamagpu_shared->mutex);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the llamagpu job worker"),
				 errhint("Raise max_worker_processes; the supervisor tries again every few seconds.")));
	}
}

/* Start a worker for every database with a marker (the supervisor, on start and now and then). */
void
LlamagpuJobWorkersRelaunch(void)
{
	DIR		   *dir;
	struct dirent *de;

	/* a standby (a base backup copies the markers) runs the jobs once promoted */
	if (RecoveryInProgress())
		return;
	dir = AllocateDir(JOB_MARKER_DIR);
	if (dir == NULL)
		return;
	while ((de = ReadDirExtended(dir, JOB_MARKER_DIR, LOG)) != NULL)
	{
		char	   *end;
		unsigned long oid = strtoul(de->d_name, &end, 10);
		char		dbpath[MAXPGPATH];
		bool		running = false;

		if (de->d_name[0] == '.' || *end != '\0' || oid == 0)
			continue;
		/* a dropped database: forget it */
		snprintf(dbpath, sizeof(dbpath), "base/%lu", oid);
		if (access(dbpath, F_OK) != 0)
		{
			char		path[MAXPGPATH];

			LlamagpuJobMarkerPath((Oid) oid, path, sizeof(path));
			(void) unlink(path);
			continue;
		}
		SpinLockAcquire(&llamagpu_shared->mutex);
		for (int i = 0; i < LLAMAGPU_MAX_JOB_WORKERS; i++)
			if (llamagpu_shared->jobs[i].dboid == (Oid) oid)
				running = true;
		SpinLockRelease(&llamagpu_shared->mutex);
		if (!running)
			LlamagpuJobWorkerEnsure((Oid) oid);
	}
	FreeDir(dir);
}

/* At commit of a transaction that created or resumed a job: start the worker. */
static void
job_xact_callback(XactEvent event, void *arg)
{
	if (!job_wake_pending)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		job_wake_pending = false;
		LlamagpuJobWorkerEnsure(MyDatabaseId);
	}
	else if (event == XACT_EVENT_ABORT)
		job_wake_pending = false;
}

/* Make sure the worker runs once this transaction commits. */
void
LlamagpuJobWakeAtCommit(void)
{
	if (llamagpu_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("llamagpu must be loaded via shared_preload_libraries"),
				 errhint("Add llamagpu to shared_preload_libraries in postgresql.conf and restart the server.")));
	LlamagpuJobMarkerWrite(MyDatabaseId);
	if (!job_xact_callback_registered)
	{
		RegisterXactCallback(job_xact_callback, NULL);
		job_xact_callback_registered = true;
	}
	job_wake_pending = true;
}
