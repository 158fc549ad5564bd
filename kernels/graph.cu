/*
 * graph.cu — decode steps replayed as CUDA (HIP) graphs.
 *
 * A decode step launches a few hundred small kernels; captured once and
 * replayed as a graph, the launch overhead between them goes.  Each step is
 * captured again (its pointers and sizes change), and the capture is applied
 * to the cached executable graph with cudaGraphExecUpdate, which is much
 * cheaper than instantiating; only a change of topology (a different kernel
 * sequence, e.g. another batch shape) instantiates a new one.
 */
#include "common.cuh"

#include <stdlib.h>

struct lg_gpu_graph_s
{
	cudaGraphExec_t exec;		/* NULL until instantiated (or after a failed update) */
};

/* Start capturing the work queued on s; relaxed: other threads may use the runtime meanwhile. */
extern "C" lg_gpu_status
lg_gpu_graph_begin(lg_gpu_stream s)
{
	if (s == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "graph_begin: the legacy default stream cannot be captured");
	return lg_gpu_check(cudaStreamBeginCapture((cudaStream_t) s, cudaStreamCaptureModeRelaxed),
						"cudaStreamBeginCapture");
}

/*
 * End the capture, bring *g up to date with it (update, else instantiate)
 * and launch it on s.  The captured graph is only a template: it is
 * destroyed here whatever happens.
 */
extern "C" lg_gpu_status
lg_gpu_graph_end_launch(lg_gpu_graph *g, lg_gpu_stream s, bool *updated)
{
	cudaGraph_t graph = NULL;
	cudaError_t e;
	lg_gpu_status st;

	if (updated != NULL)
		*updated = false;
	if (g == NULL || s == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "graph_end_launch: NULL graph handle or stream");

	/* a launch that failed during capture invalidates it: EndCapture says so */
	e = cudaStreamEndCapture((cudaStream_t) s, &graph);
	if (e != cudaSuccess)
	{
		if (graph != NULL)
			(void) cudaGraphDestroy(graph);
		(void) cudaGetLastError();
		return lg_gpu_check(e, "cudaStreamEndCapture");
	}
	if (graph == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_DEVICE, "cudaStreamEndCapture: no graph was captured");

	if (*g == NULL)
	{
		*g = (lg_gpu_graph) calloc(1, sizeof(**g));
		if (*g == NULL)
		{
			(void) cudaGraphDestroy(graph);
			return lg_gpu_set_error(LG_GPU_ERR_NOMEM, "graph_end_launch: out of host memory");
		}
	}

	if ((*g)->exec != NULL)
	{
		if (lg_graph_exec_update((*g)->exec, graph) == cudaSuccess)
		{
			if (updated != NULL)
				*updated = true;
		}
		else
		{
			/* another topology: the failed update leaves an error to clear */
			(void) cudaGetLastError();
			(void) cudaGraphExecDestroy((*g)->exec);
			(*g)->exec = NULL;
		}
	}
	if ((*g)->exec == NULL)
	{
		e = cudaGraphInstantiate(&(*g)->exec, graph, 0);
		if (e != cudaSuccess)
		{
			(*g)->exec = NULL;
			(void) cudaGraphDestroy(graph);
			return lg_gpu_check(e, "cudaGraphInstantiate");
		}
	}
	(void) cudaGraphDestroy(graph);
	st = lg_gpu_check(cudaGraphLaunch((*g)->exec, (cudaStream_t) s), "cudaGraphLaunch");
	return st;
}

/* Free the executable graph and its handle (NULL is fine). */
extern "C" void
lg_gpu_graph_destroy(lg_gpu_graph g)
{
	if (g == NULL)
		return;
	if (g->exec != NULL)
		(void) cudaGraphExecDestroy(g->exec);
	free(g);
}
