/*
 * train/core/gpu_stub.c — the GPU backend of a build without nvcc: there is
 * never a GPU.  gpu_train.cu replaces this file when CUDA is enabled.
 */
#include "train/core/gpu.h"
#include "train/core/internal.h"

int feat_gpu_built(void) { return 0; }

int feat_gpu_available(char *why, size_t why_size) {
    feat_errf(why, why_size, "built without CUDA (no nvcc at configure time, or FEATD_CUDA=OFF)");
    return 0;
}

feat_err_t feat_gpu_ctx_new(const feat_dense_t *data, uint32_t max_batch, uint32_t max_hidden,
                            feat_gpu_ctx_t **out, char *errstr, size_t errstr_size) {
    (void)data;
    (void)max_batch;
    (void)max_hidden;
    if (out)
        *out = NULL;
    feat_errf(errstr, errstr_size, "built without CUDA");
    return FEAT_ERR_NO_DEVICE;
}

feat_err_t feat_gpu_fit(feat_gpu_ctx_t *ctx, feat_params_t *p, const feat_hyper_t *hp,
                        int (*cancel)(void *), void *cancel_arg, char *errstr,
                        size_t errstr_size) {
    (void)ctx;
    (void)p;
    (void)hp;
    (void)cancel;
    (void)cancel_arg;
    feat_errf(errstr, errstr_size, "built without CUDA");
    return FEAT_ERR_NO_DEVICE;
}

void feat_gpu_ctx_destroy(feat_gpu_ctx_t *ctx) { (void)ctx; }
