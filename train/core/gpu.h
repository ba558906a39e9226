/*
 * train/core/gpu.h — is there a GPU to train on?
 *
 * featd picks the GPU at run time: a build with CUDA kernels still runs on
 * machines without a GPU or a driver, and a build without nvcc has a backend
 * that always answers "no GPU".  Thread-safe; the first call initialises the
 * CUDA runtime (tens to hundreds of milliseconds when a driver is present).
 */
#ifndef FEAT_TRAIN_CORE_GPU_H
#define FEAT_TRAIN_CORE_GPU_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the CUDA kernels were built in and a device can run them; else 0,
 * with why (may be NULL) receiving one line: "built without CUDA",
 * cudaGetDeviceCount()'s error, "no CUDA device", or the device's lack of a
 * matching kernel image.  When 1, why receives the device's name and
 * compute capability. */
int feat_gpu_available(char *why, size_t why_size);

/* 1 when this library was built with CUDA kernels. */
int feat_gpu_built(void);

#ifdef __cplusplus
}
#endif
#endif
