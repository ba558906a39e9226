/*
 * train/core/gpu_train.cu — the CUDA backend: mini-batch Adam on the GPU.
 *
 * The algorithm is cpu_train.c's, step for step: the host shuffles the rows
 * with the same PRNG and uploads the permutation each epoch, and one kernel
 * launch runs a whole epoch.  Mini-batch SGD is a chain of small dependent
 * steps, so the kernel is one block of NT threads that loops over the
 * epoch's batches, running the phases of kern_epoch.h separated by
 * __syncthreads(): forward pass with a thread per (row, unit), output errors
 * with a thread per row, then a thread per weight that sums its gradient
 * over the batch's rows in visiting order (the CPU's order) and applies
 * Adam.  The arithmetic is kern.h's, compiled with --fmad=false, so CPU and
 * GPU differ only where CUDA's exp()/tanh() round differently from libm (see
 * trainer.h for the tolerance); tests/test_gpu_emul.c runs these same phase
 * functions on the CPU and checks them bit for bit against the CPU trainer.
 * One launch per epoch keeps launch overhead out of the step time; the
 * single block trades the rest of the GPU for determinism and the CPU's
 * exact order (the MLP still gains most: its per-step work is spread over
 * NT threads).
 *
 * Data (float inputs, double targets) is uploaded once per feat_gpu_ctx_t and
 * reused by every configuration of a grid search.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/core/gpu.h"
#include "train/core/internal.h"
#include "train/core/kern.h"
#include "train/core/kern_epoch.h"

#define NT 512  /* threads of the one block */

struct feat_gpu_ctx {
    int device;
    cudaStream_t stream;
    float *x;                 /* n × d */
    double *y;                /* n */
    uint32_t *perm;           /* n, device */
    uint32_t *perm_h;         /* n, host (pageable: the copy completes before the next shuffle) */
    size_t n;
    uint32_t d, max_batch, max_hidden;
    double *e;                /* max_batch output errors */
    double *A, *H, *D;        /* max_batch × max_hidden pre-activations, activations, deltas */
};

/* ---- kernels ---------------------------------------------------------- */

/* One epoch of a linear model; b1t, b2t: β^t before its first step. */
__global__ void __launch_bounds__(NT) k_linear_epoch(feat_epoch_args_t a, double b1t, double b2t) {
    for (uint32_t st = 0; st < a.n; st += a.B) {
        const feat_step_t s = feat_step_begin(&a, st, &b1t, &b2t);
        feat_lin_phase1(&a, &s, threadIdx.x, NT);
        __syncthreads();
        feat_lin_phase2(&a, &s, threadIdx.x, NT);
        __syncthreads();
    }
}

/* One epoch of an MLP. */
__global__ void __launch_bounds__(NT) k_mlp_epoch(feat_epoch_args_t a, double b1t, double b2t) {
    for (uint32_t st = 0; st < a.n; st += a.B) {
        const feat_step_t s = feat_step_begin(&a, st, &b1t, &b2t);
        feat_mlp_phase1(&a, &s, threadIdx.x, NT);
        __syncthreads();
        feat_mlp_phase2(&a, &s, threadIdx.x, NT);
        __syncthreads();
        feat_mlp_phase3(&a, &s, threadIdx.x, NT);
        __syncthreads();
        feat_mlp_phase4(&a, &s, threadIdx.x, NT);
        __syncthreads();
    }
}

/* ---- host side -------------------------------------------------------- */

static feat_err_t cuda_err(cudaError_t ce, const char *what, char *errstr, size_t errsz) {
    feat_errf(errstr, errsz, "%s: %s", what, cudaGetErrorString(ce));
    (void)cudaGetLastError(); /* reset the non-sticky error state for later calls */
    if (ce == cudaErrorMemoryAllocation)
        return FEAT_ERR_NOMEM;
    if (ce == cudaErrorNoDevice || ce == cudaErrorInsufficientDriver ||
        ce == cudaErrorNoKernelImageForDevice)
        return FEAT_ERR_NO_DEVICE;
    return FEAT_ERR_UNAVAILABLE;
}

#define CK(call, what)                                                  \
    do {                                                                \
        cudaError_t ce_ = (call);                                       \
        if (ce_ != cudaSuccess) {                                       \
            err = cuda_err(ce_, what, errstr, errstr_size);             \
            goto fail;                                                  \
        }                                                               \
    } while (0)

extern "C" int feat_gpu_built(void) { return 1; }

extern "C" int feat_gpu_available(char *why, size_t why_size) {
    int n = 0, dev = 0;
    cudaError_t ce = cudaGetDeviceCount(&n);
    if (ce != cudaSuccess) {
        feat_errf(why, why_size, "cudaGetDeviceCount: %s", cudaGetErrorString(ce));
        (void)cudaGetLastError();
        return 0;
    }
    if (n == 0) {
        feat_errf(why, why_size, "no CUDA device");
        return 0;
    }
    cudaDeviceProp prop;
    if ((ce = cudaGetDevice(&dev)) != cudaSuccess ||
        (ce = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess) {
        feat_errf(why, why_size, "cannot query the CUDA device: %s", cudaGetErrorString(ce));
        (void)cudaGetLastError();
        return 0;
    }
    cudaFuncAttributes fa;
    if ((ce = cudaFuncGetAttributes(&fa, k_linear_epoch)) != cudaSuccess ||
        (ce = cudaFuncGetAttributes(&fa, k_mlp_epoch)) != cudaSuccess) {
        feat_errf(why, why_size, "%s (compute capability %d.%d) cannot run featd's kernels: %s",
                  prop.name, prop.major, prop.minor, cudaGetErrorString(ce));
        (void)cudaGetLastError();
        return 0;
    }
    feat_errf(why, why_size, "%s (compute capability %d.%d)", prop.name, prop.major, prop.minor);
    return 1;
}

extern "C" void feat_gpu_ctx_destroy(feat_gpu_ctx_t *c) {
    if (!c)
        return;
    cudaFree(c->x);
    cudaFree(c->y);
    cudaFree(c->perm);
    cudaFree(c->e);
    cudaFree(c->A);
    cudaFree(c->H);
    cudaFree(c->D);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c->perm_h);
    free(c);
}

extern "C" feat_err_t feat_gpu_ctx_new(const feat_dense_t *data, uint32_t max_batch,
                                       uint32_t max_hidden, feat_gpu_ctx_t **out, char *errstr,
                                       size_t errstr_size) {
    feat_err_t err = FEAT_OK;
    *out = NULL;
    if (!data || data->n == 0 || data->n > FEAT_TRAIN_MAX_ROWS || data->d == 0 || max_batch == 0 ||
        max_batch > FEAT_TRAIN_MAX_BATCH || max_hidden == 0 || max_hidden > FEAT_TRAIN_MAX_HIDDEN) {
        feat_errf(errstr, errstr_size, "bad GPU context arguments");
        return FEAT_ERR_INVALID;
    }
    feat_gpu_ctx_t *c = (feat_gpu_ctx_t *)calloc(1, sizeof(*c));
    if (!c) {
        feat_errf(errstr, errstr_size, "out of memory");
        return FEAT_ERR_NOMEM;
    }
    const size_t n = data->n, d = data->d;
    const size_t bh = (size_t)max_batch * max_hidden;
    c->n = n;
    c->d = data->d;
    c->max_batch = max_batch;
    c->max_hidden = max_hidden;
    c->perm_h = (uint32_t *)malloc(n * sizeof(uint32_t));
    if (!c->perm_h) {
        feat_errf(errstr, errstr_size, "out of memory");
        err = FEAT_ERR_NOMEM;
        goto fail;
    }
    CK(cudaGetDevice(&c->device), "cudaGetDevice");
    CK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    CK(cudaMalloc((void **)&c->x, n * d * sizeof(float)), "cudaMalloc(inputs)");
    CK(cudaMalloc((void **)&c->y, n * sizeof(double)), "cudaMalloc(targets)");
    CK(cudaMalloc((void **)&c->perm, n * sizeof(uint32_t)), "cudaMalloc(permutation)");
    CK(cudaMalloc((void **)&c->e, max_batch * sizeof(double)), "cudaMalloc(errors)");
    CK(cudaMalloc((void **)&c->A, bh * sizeof(double)), "cudaMalloc(activations)");
    CK(cudaMalloc((void **)&c->H, bh * sizeof(double)), "cudaMalloc(activations)");
    CK(cudaMalloc((void **)&c->D, bh * sizeof(double)), "cudaMalloc(deltas)");
    CK(cudaMemcpyAsync(c->x, data->x, n * d * sizeof(float), cudaMemcpyHostToDevice, c->stream),
       "upload inputs");
    CK(cudaMemcpyAsync(c->y, data->y, n * sizeof(double), cudaMemcpyHostToDevice, c->stream),
       "upload targets");
    CK(cudaStreamSynchronize(c->stream), "upload");
    *out = c;
    return FEAT_OK;
fail:
    feat_gpu_ctx_destroy(c);
    return err;
}

extern "C" feat_err_t feat_gpu_fit(feat_gpu_ctx_t *c, feat_params_t *p, const feat_hyper_t *hp,
                                   int (*cancel)(void *), void *cancel_arg, char *errstr,
                                   size_t errstr_size) {
    feat_err_t err = FEAT_OK;
    double *w = NULL, *m = NULL, *v = NULL;
    if (!c || !p || !hp || p->d != c->d || hp->batch_size == 0 ||
        hp->batch_size > c->max_batch || p->h > c->max_hidden) {
        feat_errf(errstr, errstr_size, "GPU context does not fit this configuration");
        return FEAT_ERR_INVALID;
    }
    const size_t P = p->n, n = c->n;
    const uint32_t B = hp->batch_size;
    feat_epoch_args_t a;
    memset(&a, 0, sizeof(a));
    a.X = c->x;
    a.Y = c->y;
    a.perm = c->perm;
    a.n = (uint32_t)n;
    a.d = c->d;
    a.h = p->h;
    a.B = B;
    a.binary = p->task == FEAT_TASK_BINARY;
    a.act = (int)p->act;
    a.lr = hp->learning_rate;
    a.l2 = hp->l2;
    a.b1 = hp->beta1;
    a.b2 = hp->beta2;
    a.eps = hp->epsilon;
    a.e = c->e;
    a.A = c->A;
    a.H = c->H;
    a.D = c->D;
    double b1t = 1.0, b2t = 1.0;
    const size_t steps = (n + B - 1) / B;
    uint64_t s = feat_shuffle_state(hp->seed);

    CK(cudaSetDevice(c->device), "cudaSetDevice");
    CK(cudaMalloc((void **)&w, P * sizeof(double)), "cudaMalloc(weights)");
    CK(cudaMalloc((void **)&m, P * sizeof(double)), "cudaMalloc(moments)");
    CK(cudaMalloc((void **)&v, P * sizeof(double)), "cudaMalloc(moments)");
    CK(cudaMemcpyAsync(w, p->w, P * sizeof(double), cudaMemcpyHostToDevice, c->stream),
       "upload weights");
    CK(cudaMemsetAsync(m, 0, P * sizeof(double), c->stream), "cudaMemset");
    CK(cudaMemsetAsync(v, 0, P * sizeof(double), c->stream), "cudaMemset");
    a.w = w;
    a.m = m;
    a.v = v;
    for (size_t i = 0; i < n; i++)
        c->perm_h[i] = (uint32_t)i;
    for (uint32_t ep = 0; ep < hp->epochs; ep++) {
        /* The shuffle overlaps the previous epoch's kernel.  A copy from
         * pageable memory has taken perm_h into staging memory when it
         * returns and lands on the device after that kernel (stream order). */
        if (hp->shuffle)
            feat_shuffle(c->perm_h, n, &s);
        CK(cudaStreamSynchronize(c->stream), "training kernel");
        if (cancel && cancel(cancel_arg)) {
            feat_errf(errstr, errstr_size, "cancelled");
            err = FEAT_ERR_UNAVAILABLE;
            goto fail;
        }
        if (ep == 0 || hp->shuffle)
            CK(cudaMemcpyAsync(c->perm, c->perm_h, n * sizeof(uint32_t), cudaMemcpyHostToDevice,
                               c->stream),
               "upload permutation");
        if (p->kind == FEAT_MODEL_MLP)
            k_mlp_epoch<<<1, NT, 0, c->stream>>>(a, b1t, b2t);
        else
            k_linear_epoch<<<1, NT, 0, c->stream>>>(a, b1t, b2t);
        CK(cudaGetLastError(), "kernel launch");
        for (size_t st = 0; st < steps; st++) { /* the kernel's β^t, replayed */
            b1t *= a.b1;
            b2t *= a.b2;
        }
    }
    CK(cudaMemcpyAsync(p->w, w, P * sizeof(double), cudaMemcpyDeviceToHost, c->stream),
       "download weights");
    CK(cudaStreamSynchronize(c->stream), "training kernels");
fail:
    if (err != FEAT_OK && c->stream)
        (void)cudaStreamSynchronize(c->stream);
    cudaFree(w);
    cudaFree(m);
    cudaFree(v);
    return err;
}
