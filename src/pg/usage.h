/*
 * usage.h — the shared buffer of usage records, between the backends that
 * append to it (usage.c) and the flushers that empty it (usage_worker.c).
 */
#ifndef LLAMAGPU_USAGE_H
#define LLAMAGPU_USAGE_H

#include "llamagpu.h"

#include "storage/lwlock.h"

/* One finished (or refused) call, waiting to be written to llm_usage. */
typedef struct UsageRecord
{
	bool		used;			/* false: on the free list */
	uint64		seq;			/* order of appending */
	Oid			dboid;
	TimestampTz started;
	TimestampTz finished;
	Oid			role;
	NameData	role_name;
	Oid			outer_role;
	NameData	outer_role_name;
	int64		key_id;			/* 0: none */
	NameData	key_name;
	char		model[64];
	char		kind[16];
	char		status[12];		/* ok, error, rejected, cancelled */
	int32		requests;
	int32		errors;
	int64		prompt_tokens;
	int64		completion_tokens;
	int32		sqlstate;		/* 0: none */
	int32		pid;
} UsageRecord;

/* The usage flusher of one database. */
typedef struct UsageWorkerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* 0 while starting */
	Latch	   *latch;
	TimestampTz launched_at;
} UsageWorkerSlot;

typedef struct UsageShared
{
	LWLock	   *lock;			/* everything below */
	int			capacity;
	int			n_free;
	uint64		appended;		/* records appended since the start (also the last seq) */
	uint64		flushed;		/* records written to llm_usage */
	uint64		dropped;		/* records lost: the buffer was full or a write failed */
	uint64		dropped_logged; /* how many of them a flusher has logged */
	UsageWorkerSlot workers[LLAMAGPU_MAX_USAGE_WORKERS];
	UsageRecord records[FLEXIBLE_ARRAY_MEMBER];	/* then int free[capacity] */
} UsageShared;

extern UsageShared *usage_shared;

#endif							/* LLAMAGPU_USAGE_H */
