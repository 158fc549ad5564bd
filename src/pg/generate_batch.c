/*
 * generate_batch.c — many prompts on one engine connection: every prompt is
 * its own GENERATE request (its own request id), sent without waiting for
 * the others, so the engine can batch them; replies interleave and are
 * matched by id.  Used by llm_generate_batch and by table jobs.
 *
 * At most a window of requests is in flight, so a huge array does not flood
 * the engine's queue; an X status=busy reply (the queue is full, other
 * sessions included) puts the request back to be sent again after a pause,
 * and shrinks the window to what the engine took.  If the statement is
 * cancelled (or fails), CANCEL goes out for everything in flight before the
 * connection closes.
 */
#include "llamagpu.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(llm_generate_batch);

#define BATCH_WINDOW_MAX	64
#define BUSY_PAUSE_MIN_MS	10
#define BUSY_PAUSE_MAX_MS	1000

typedef struct BatchRun
{
	EngineConn *conn;
	BatchItem  *items;
	int			n;
	int			current;		/* the item an error is about, or -1 */
	const char *what;			/* names the items in error contexts */
	uint32		first_id;		/* the id of the first request sent */
	int		   *by_id;			/* item index of request first_id + i */
	int			n_sent;
	int			cap_sent;
} BatchRun;

/* Requests in flight per batch: 64, and never more than the engine queues. */
int
GenerateBatchWindow(void)
{
	return Max(1, Min(BATCH_WINDOW_MAX, llamagpu_max_queued_requests));
}

/* Error context: which item failed. */
static void
batch_error_context(void *arg)
{
	BatchRun   *run = arg;

	if (run->current >= 0 && run->what)
		errcontext("%s %d", run->what, run->current + 1);
}

/* The item in flight that a reply is for, or NULL (a late reply to something cancelled). */
static BatchItem *
find_item(BatchRun *run, uint32 id)
{
	uint32		i = id - run->first_id;
	BatchItem  *it;

	if (run->n_sent == 0 || i >= (uint32) run->n_sent)
		return NULL;
	it = &run->items[run->by_id[i]];
	return it->state == BATCH_ITEM_SENT && it->id == id ? it : NULL;
}

/* Remember which item request id is for (ids are consecutive on a connection). */
static void
remember_id(BatchRun *run, uint32 id, int index)
{
	if (run->n_sent == 0)
		run->first_id = id;
	if (run->n_sent == run->cap_sent)
	{
		run->cap_sent = Max(64, run->cap_sent * 2);
		run->by_id = run->by_id ? repalloc(run->by_id, sizeof(int) * run->cap_sent) :
			palloc(sizeof(int) * run->cap_sent);
	}
	Assert(id - run->first_id == (uint32) run->n_sent);
	run->by_id[run->n_sent++] = index;
}

/* Send CANCEL for everything in flight (while an error unwinds). */
static void
cancel_in_flight(BatchRun *run)
{
	for (int i = 0; i < run->n; i++)
		if (run->items[i].state == BATCH_ITEM_SENT)
			EngineCancelNoWait(run->conn, run->items[i].id);
}

/* Send requests for pending items until the window is full. */
static void
send_pending(BatchRun *run, GenerateRequest *req, int *next, int *in_flight, int window)
{
	while (*in_flight < window && *next < run->n)
	{
		BatchItem  *it = &run->items[*next];
		StringInfoData payload;

		if (it->state == BATCH_ITEM_PENDING)
		{
			GenerateRequestPayload(req, it->prompt, &payload);
			it->id = EngineSendRequest(run->conn, LG_FRAME_GENERATE, &payload);
			remember_id(run, it->id, *next);
			it->state = BATCH_ITEM_SENT;
			resetStringInfo(&it->output);
			(*in_flight)++;
			pfree(payload.data);
		}
		(*next)++;
	}
}

/* The pipelined loop: send, read replies, resend what the engine was too busy to take. */
static void
batch_loop(BatchRun *run, GenerateRequest *req, int window, bool raise_errors)
{
	int			next = 0;		/* first item not yet looked at for sending */
	int			in_flight = 0;
	int			left = 0;
	int			busy_pause = 0; /* ms to wait before sending again; 0: not busy */
	int			max_window = window;

	for (int i = 0; i < run->n; i++)
		if (run->items[i].state == BATCH_ITEM_PENDING)
			left++;

	while (left > 0)
	{
		EngineFrame frame;
		BatchItem  *it;

		if (busy_pause == 0 || in_flight == 0)
		{
			if (busy_pause > 0)
			{
				/* nothing of ours runs: wait a little before trying again */
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 busy_pause, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
				busy_pause = Min(busy_pause * 2, BUSY_PAUSE_MAX_MS);
			}
			send_pending(run, req, &next, &in_flight, window);
		}
		if (in_flight == 0)
			continue;

		EngineReadFrame(run->conn, &frame);
		it = find_item(run, frame.id);
		if (it == NULL)
			continue;			/* a late reply to something cancelled */
		run->current = it - run->items;
		switch (frame.type)
		{
			case LG_FRAME_PIECE:
				appendBinaryStringInfo(&it->output, frame.payload.data, frame.payload.len);
				break;
			case LG_FRAME_END:
				{
					const char *v = EngineFrameGet(&frame, "n_gen");

					it->n_gen = v ? strtoll(v, NULL, 10) : 0;
					v = EngineFrameGet(&frame, "n_prompt");
					it->n_prompt = v ? strtoll(v, NULL, 10) : 0;
					v = EngineFrameGet(&frame, "finish");
					strlcpy(it->finish, v ? v : "", sizeof(it->finish));
					v = EngineFrameGet(&frame, "message");
					it->message = v ? pstrdup(v) : NULL;
					it->state = BATCH_ITEM_DONE;
					in_flight--;
					left--;
					/* the engine keeps up again: open the window step by step */
					busy_pause = 0;
					window = Min(window + 1, max_window);
					if (req->use_cache)
						ResponseCacheStore(req, it->key, it->output.data, it->output.len);
					break;
				}
			case LG_FRAME_ERROR:
				{
					const char *status = EngineFrameGet(&frame, "status");

					in_flight--;
					if (status && strcmp(status, LG_WIRE_BUSY) == 0)
					{
						/* send it again later, never more at once than the engine took */
						it->state = BATCH_ITEM_PENDING;
						next = Min(next, run->current);
						window = Max(1, in_flight);
						busy_pause = busy_pause ? busy_pause : BUSY_PAUSE_MIN_MS;
						break;
					}
					/* it is over in the engine: no CANCEL for it while the error unwinds */
					it->state = BATCH_ITEM_FAILED;
					it->error = frame;
					if (raise_errors)
						EngineReportGenerateError(&frame, req->constrained);
					left--;
					break;
				}
			default:
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("unexpected frame type %d from the llamagpu engine", frame.type)));
		}
		run->current = -1;
	}
}

/* The tokens the items used (cached answers: none) and how they ended. */
static void
batch_usage(BatchItem *items, int n, int64 *prompt_tokens, int64 *completion_tokens,
			int *done, int *failed)
{
	*prompt_tokens = *completion_tokens = 0;
	*done = *failed = 0;
	for (int i = 0; i < n; i++)
	{
		if (items[i].state == BATCH_ITEM_DONE)
		{
			(*done)++;
			if (!items[i].cached)
			{
				*prompt_tokens += items[i].n_prompt;
				*completion_tokens += items[i].n_gen;
			}
		}
		else if (items[i].state == BATCH_ITEM_FAILED)
			(*failed)++;
	}
}

/* The SQLSTATE of the first failed item, 0 if none failed. */
static int
batch_first_error(GenerateRequest *req, BatchItem *items, int n)
{
	for (int i = 0; i < n; i++)
		if (items[i].state == BATCH_ITEM_FAILED)
		{
			int			code;

			(void) EngineGenerateErrorText(&items[i].error, req->constrained, &code);
			return code;
		}
	return 0;
}

/* Look up the cached answers; how many items are left to send. */
static int
batch_from_cache(GenerateRequest *req, BatchItem *items, int n)
{
	int			todo = 0;

	for (int i = 0; i < n; i++)
	{
		BatchItem  *it = &items[i];

		initStringInfo(&it->output);
		it->state = it->prompt ? BATCH_ITEM_PENDING : BATCH_ITEM_SKIP;
		if (it->state == BATCH_ITEM_PENDING && req->use_cache)
		{
			char	   *hit;

			ResponseCacheKey(req, it->prompt, it->key);
			hit = ResponseCacheLookup(req, it->key);
			if (hit)
			{
				appendStringInfoString(&it->output, hit);
				it->state = BATCH_ITEM_DONE;
				it->cached = true;
			}
		}
		if (it->state == BATCH_ITEM_PENDING)
			todo++;
	}
	return todo;
}

/*
 * Generate every item (see llamagpu.h).  Every prompt is a request for the
 * quota, admitted all together before anything is sent, cached answers
 * included (they cost no tokens); the call is one usage record, written
 * however it ends.
 */
void
GenerateBatchRun(GenerateRequest *req, BatchItem *items, int n, int window,
				 bool raise_errors, const char *what)
{
	BatchRun	run = {0};
	ErrorContextCallback errcb;
	LlamagpuUsageScope usage;
	int			n_requests = 0;
	int64		prompt_tokens;
	int64		completion_tokens;
	int			done;
	int			failed;

	for (int i = 0; i < n; i++)
		if (items[i].prompt)
			n_requests++;
	if (n_requests > 0)
		LlamagpuQuotaAdmit(&usage, req->model, req->kind, n_requests);

	run.items = items;
	run.n = n;
	run.current = -1;
	run.what = what;
	errcb.callback = batch_error_context;
	errcb.arg = &run;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	PG_TRY();
	{
		if (batch_from_cache(req, items, n) > 0)
		{
			run.conn = EngineConnect(llamagpu_connect_timeout, false);
			PG_TRY();
			{
				batch_loop(&run, req, window, raise_errors);
			}
			PG_CATCH();
			{
				cancel_in_flight(&run);
				PG_RE_THROW();
			}
			PG_END_TRY();
			EngineClose(run.conn);
		}
	}
	PG_CATCH();
	{
		if (n_requests > 0)
		{
			batch_usage(items, n, &prompt_tokens, &completion_tokens, &done, &failed);
			LlamagpuUsageFinishError(&usage, prompt_tokens, completion_tokens, n_requests - done);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;

	if (n_requests > 0)
	{
		batch_usage(items, n, &prompt_tokens, &completion_tokens, &done, &failed);
		LlamagpuUsageFinish(&usage, prompt_tokens, completion_tokens, failed,
							failed ? batch_first_error(req, items, n) : 0);
	}
}

/*
 * llm_generate_batch(prompts text[], model, max_tokens, ...) RETURNS
 * TABLE(ord int, output text): one row per element, in array order; NULL
 * elements give NULL without a request.
 */
Datum
llm_generate_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *prompts;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	BatchItem  *items;
	GenerateArgs args;
	GenerateRequest req;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	prompts = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(prompts) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("prompts must be a one-dimensional array")));
	deconstruct_array(prompts, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);

	GenerateArgsFromCall(fcinfo, 1, &args);
	GenerateRequestBuild(&args, &req);
	if (strcmp(req.kind, "generate") == 0)
		req.kind = "batch";

	items = palloc0(sizeof(BatchItem) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		ErrorContextCallback errcb;
		BatchRun	ctx = {0};

		if (nulls[i])
			continue;
		/* an empty prompt is an error before anything is sent */
		ctx.current = i;
		ctx.what = "prompt";
		errcb.callback = batch_error_context;
		errcb.arg = &ctx;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		items[i].prompt = GeneratePromptUtf8(DatumGetTextPP(elems[i]));
		error_context_stack = errcb.previous;
	}

	GenerateBatchRun(&req, items, n, GenerateBatchWindow(), true, "prompt");

	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		isnull[2] = {false, false};

		values[0] = Int32GetDatum(i + 1);
		if (items[i].state == BATCH_ITEM_DONE)
			values[1] = PointerGetDatum(LlamagpuTextFromUtf8(items[i].output.data, items[i].output.len));
		else
			isnull[1] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
	}
	return (Datum) 0;
}
