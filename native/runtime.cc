#include "runtime.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/cpu/Utils.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/cuda.h>

#include <atomic>
#include <fstream>
#include <stdexcept>

namespace cxrmask {
namespace {
std::atomic<int> g_threads{0};

bool CpuHasBf16() {
  static const bool has = [] {
    try {
      auto caps = at::cpu::get_cpu_capabilities();
      for (const char* key : {"avx512_bf16", "avx512bf16", "amx_bf16"}) {
        auto it = caps.find(key);
        if (it != caps.end() && it->second.isBool() && it->second.toBool()) return true;
      }
    } catch (...) {
    }
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) == 0) {
        return line.find(" avx512_bf16") != std::string::npos ||
               line.find(" amx_bf16") != std::string::npos;
      }
    }
    return false;
  }();
  return has;
}
}  // namespace

c10::Device ResolveDevice(const std::string& spec) {
  if (spec == "auto") {
    return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw std::invalid_argument(
          "device '" + spec +
          "' requested but CUDA is not available (no GPU or driver visible to this process, "
          "or a CPU-only LibTorch); use device 'cpu' or 'auto'");
    }
    c10::Device d(spec);
    if (d.has_index() && d.index() >= static_cast<int>(torch::cuda::device_count())) {
      throw std::invalid_argument("device '" + spec + "' does not exist (" +
                                  std::to_string(torch::cuda::device_count()) + " CUDA devices)");
    }
    if (!d.has_index()) d.set_index(0);
    return d;
  }
  throw std::invalid_argument("unknown device '" + spec + "' (expected cpu, cuda, cuda:N or auto)");
}

bool Bf16Supported(const c10::Device& device) {
  if (device.is_cuda()) return true;
  return CpuHasBf16();
}

void SetRequestedThreads(int n) {
  g_threads.store(n);
  if (n > 0) at::set_num_threads(n);
}

int RequestedThreads() { return g_threads.load(); }

namespace {
std::atomic<GraphOptimizeMode> g_graph_optimize{GraphOptimizeMode::kAuto};
}  // namespace

void SetGraphOptimize(GraphOptimizeMode mode) { g_graph_optimize = mode; }

// The legacy flags only: mixing them with the per-op fp32_precision API makes torch raise.
void SetTf32(bool enabled) {
  at::globalContext().setAllowTF32CuDNN(enabled);
  at::globalContext().setAllowTF32CuBLAS(enabled);
}

Tf32State GetTf32() {
  return {at::globalContext().allowTF32CuDNN(at::Float32Op::CONV),
          at::globalContext().allowTF32CuBLAS()};
}

void ApplyWorkerSettings(bool training) {
  int n = g_threads.load();
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
  const GraphOptimizeMode mode = g_graph_optimize.load();
  const bool optimize =
      mode == GraphOptimizeMode::kAuto ? !training : mode == GraphOptimizeMode::kOn;
  if (torch::jit::getGraphExecutorOptimize() != optimize) {
    torch::jit::setGraphExecutorOptimize(optimize);
  }
}

AutocastGuard::AutocastGuard(c10::DeviceType type, bool enabled) : type_(type), enabled_(enabled) {
  if (!enabled_) return;
  prev_enabled_ = at::autocast::is_autocast_enabled(type_);
  prev_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, prev_enabled_);
  at::autocast::set_autocast_dtype(type_, prev_dtype_);
}

}  // namespace cxrmask
