// Process-wide torch runtime facts and thread-local guards used inside worker threads.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <string>

namespace cxrmask {

// "cpu" | "cuda" | "cuda:N" | "auto" -> a device; throws std::invalid_argument with a clear
// message.
c10::Device ResolveDevice(const std::string& spec);

// True when bf16 autocast is worth using on this device (CUDA, or a CPU with AVX512-BF16/AMX).
bool Bf16Supported(const c10::Device& device);

// Intra-op threads requested from JS (0 = torch default). Applied again inside each worker,
// since OpenMP thread counts are per calling thread.
void SetRequestedThreads(int n);
int RequestedThreads();

// TorchScript graph-executor optimisation (profiling, autodiff subgraphs, fusion). By default
// (kAuto) on for inference and off for training: on the ViT it slows a CPU training step (the
// profiled plan's forward took 3.1-3.6 s instead of 2.4-2.6 s) and speeds up inference by ~3 %
// (docs/native.md). The flag is thread-local in torch, hence set by each op.
enum class GraphOptimizeMode { kAuto, kOn, kOff };
void SetGraphOptimize(GraphOptimizeMode mode);

// TF32 for float32 convolutions (cuDNN) and matmuls (cuBLAS), process-wide. Torch's defaults are
// cuDNN on and cuBLAS off; parity checks turn both off, since TF32 convolutions move U-Net logits
// by ~2e-3 from the CPU reference.
void SetTf32(bool enabled);
struct Tf32State {
  bool cudnn;
  bool cublas;
};
Tf32State GetTf32();

// Applies the settings above on the calling (compute) thread; `training`: the op runs autograd.
void ApplyWorkerSettings(bool training = false);

// RAII: bf16 autocast for one device type on the current thread; restores the previous state.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType type, bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType type_;
  bool enabled_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

}  // namespace cxrmask
