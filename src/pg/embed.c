/*
 * embed.c — llm_embed, llm_embed_batch and llm_similarity: embeddings as
 * real[] (pgvector's vector takes them by a cast, or llm_embed_vector where
 * pgvector is installed; see docs/embeddings.md).
 */
#include "llamagpu.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(llm_embed);
PG_FUNCTION_INFO_V1(llm_embed_batch);
PG_FUNCTION_INFO_V1(llm_similarity);

/* A vector as a real[] array. */
ArrayType *
EmbedVectorArray(const float *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = Float4GetDatum(v[i]);
	return construct_array(d, n, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
}

/* A boolean argument that must not be NULL. */
static bool
bool_arg(FunctionCallInfo fcinfo, int i, const char *name)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return PG_GETARG_BOOL(i);
}

/* The model argument (NULL: llamagpu.default_model), looked up and checked. */
static LlamagpuModel *
model_arg(FunctionCallInfo fcinfo, int i)
{
	return LlamagpuModelLookup(PG_ARGISNULL(i) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(i)), true);
}

/*
 * llm_embed(input text, model text, normalize bool, truncate bool) RETURNS
 * real[]: NULL input gives NULL (as a NULL element of llm_embed_batch does),
 * so SET emb = llm_embed(body) leaves rows without text without a vector.
 */
Datum
llm_embed(PG_FUNCTION_ARGS)
{
	const char *input;
	bool		normalize;
	bool		truncate;
	LlamagpuModel *model;
	EmbedResult res;

	normalize = bool_arg(fcinfo, 2, "normalize");
	truncate = bool_arg(fcinfo, 3, "truncate");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	input = EmbedInputUtf8(PG_GETARG_TEXT_PP(0));
	model = model_arg(fcinfo, 1);
	EmbedRun(model, &input, 1, normalize, truncate, "embed", &res);
	PG_RETURN_ARRAYTYPE_P(EmbedVectorArray(res.vectors, res.n_embd));
}

/* Error context: which element of the inputs array. */
static void
input_error_context(void *arg)
{
	errcontext("input %d", *(int *) arg + 1);
}

/*
 * llm_embed_batch(inputs text[], model, normalize, truncate) RETURNS
 * TABLE(ord int, embedding real[]): one row per element, in order; NULL
 * elements give NULL rows without a request.
 */
Datum
llm_embed_batch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			n_sent = 0;
	const char **inputs;
	int		   *slot;
	bool		normalize;
	bool		truncate;
	EmbedResult res;

	InitMaterializedSRF(fcinfo, 0);
	normalize = bool_arg(fcinfo, 2, "normalize");
	truncate = bool_arg(fcinfo, 3, "truncate");
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("inputs must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);

	inputs = palloc(sizeof(char *) * Max(n, 1));
	slot = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		ErrorContextCallback errcb;

		slot[i] = -1;
		if (nulls[i])
			continue;
		/* an empty input is an error before anything is sent */
		errcb.callback = input_error_context;
		errcb.arg = &i;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		inputs[n_sent] = EmbedInputUtf8(DatumGetTextPP(elems[i]));
		error_context_stack = errcb.previous;
		slot[i] = n_sent++;
	}
	if (n_sent > 0)
		EmbedRun(model_arg(fcinfo, 1), inputs, n_sent, normalize, truncate, "embed_batch", &res);
	else
		(void) model_arg(fcinfo, 1);	/* the model must exist and be usable all the same */

	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		isnull[2] = {false, false};

		values[0] = Int32GetDatum(i + 1);
		if (slot[i] >= 0)
			values[1] = PointerGetDatum(EmbedVectorArray(res.vectors + (size_t) slot[i] * res.n_embd,
														 res.n_embd));
		else
			isnull[1] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
	}
	return (Datum) 0;
}

/* A real[] argument's elements, checked: one dimension, not empty, no NULLs. */
static float4 *
vector_arg(ArrayType *a, const char *name, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	float4	   *v;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	deconstruct_array(a, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT, &elems, &nulls, n);
	if (*n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must not be empty", name)));
	v = palloc(sizeof(float4) * *n);
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", name),
					 errdetail("Element %d is null.", i + 1)));
		v[i] = DatumGetFloat4(elems[i]);
		if (isnan(v[i]) || isinf(v[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("%s must contain finite numbers", name),
					 errdetail("Element %d is %s.", i + 1, isnan(v[i]) ? "NaN" : "infinite")));
	}
	return v;
}

/*
 * llm_similarity(a real[], b real[]) RETURNS float8: the cosine of the
 * angle between a and b, in double precision (STRICT: NULL arrays give
 * NULL).  pgvector's <=> is 1 minus this.
 */
Datum
llm_similarity(PG_FUNCTION_ARGS)
{
	int			na;
	int			nb;
	float4	   *a = vector_arg(PG_GETARG_ARRAYTYPE_P(0), "a", &na);
	float4	   *b = vector_arg(PG_GETARG_ARRAYTYPE_P(1), "b", &nb);
	double		dot = 0;
	double		aa = 0;
	double		bb = 0;
	double		cos;

	if (na != nb)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("vectors must have the same length"),
				 errdetail("a has %d elements, b has %d.", na, nb)));
	for (int i = 0; i < na; i++)
	{
		dot += (double) a[i] * b[i];
		aa += (double) a[i] * a[i];
		bb += (double) b[i] * b[i];
	}
	if (aa == 0 || bb == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("cosine similarity of a zero vector is undefined"),
				 errdetail("%s has only zeros.", aa == 0 ? "a" : "b")));
	cos = dot / (sqrt(aa) * sqrt(bb));
	/* rounding may step just outside [-1, 1] */
	PG_RETURN_FLOAT8(Max(-1.0, Min(1.0, cos)));
}
