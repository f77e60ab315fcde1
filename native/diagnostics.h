// Torch / CUDA / BLAS / thread facts for `cxrmask doctor` and bug reports.
#pragma once

#include <napi.h>

namespace cxrmask {

// { torch: {version, cxx11Abi, debug, linkedVia}, cuda: {available, deviceCount, devices, cudnn},
//   blas: {blas, lapack, mkl, mkldnn, mkldnnVersion, fast}, cpu: {bf16, capability},
//   threads: {intraOp, interOp, requested}, buildConfig, parallelInfo }
Napi::Object Diagnostics(Napi::Env env);

}  // namespace cxrmask
