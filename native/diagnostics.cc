#include "diagnostics.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <dlfcn.h>
#include <link.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <regex>
#include <string>
#include <vector>

#include "runtime.h"

#ifndef CXRMASK_TORCH_HOW
#define CXRMASK_TORCH_HOW "unknown"
#endif

namespace cxrmask {
namespace {

std::string ConfigValue(const std::string& config, const std::string& key) {
  std::smatch m;
  std::regex re(key + "=([^,\\s]+)");
  return std::regex_search(config, m, re) ? m[1].str() : "";
}

// Device names without CUDA headers: cudaDeviceProp starts with `char name[256]` in every CUDA
// release, so ask the cudart that libtorch_cuda already loaded.
int FindCudart(struct dl_phdr_info* info, size_t, void* out) {
  std::string name = info->dlpi_name ? info->dlpi_name : "";
  if (name.find("libcudart") != std::string::npos) {
    *static_cast<std::string*>(out) = name;
    return 1;
  }
  return 0;
}

std::vector<std::string> CudaDeviceNames(int count) {
  std::vector<std::string> names;
  std::string path;
  dl_iterate_phdr(FindCudart, &path);
  void* lib = path.empty() ? nullptr : dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  using GetProps = int (*)(void*, int);
  GetProps fn = nullptr;
  if (lib) {
    fn = reinterpret_cast<GetProps>(dlsym(lib, "cudaGetDeviceProperties_v2"));
    if (!fn) fn = reinterpret_cast<GetProps>(dlsym(lib, "cudaGetDeviceProperties"));
  }
  for (int i = 0; i < count; ++i) {
    std::vector<char> buf(16384, 0);
    if (fn && fn(buf.data(), i) == 0) {
      names.emplace_back(buf.data(), strnlen(buf.data(), 256));
    } else {
      names.emplace_back("cuda:" + std::to_string(i));
    }
  }
  if (lib) dlclose(lib);
  return names;
}

}  // namespace

Napi::Object Diagnostics(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  const std::string config = at::show_config();

  Napi::Object torch_info = Napi::Object::New(env);
  torch_info.Set("version", TORCH_VERSION);
  torch_info.Set("cxx11Abi", static_cast<bool>(_GLIBCXX_USE_CXX11_ABI));
  torch_info.Set("cudaBuild", ConfigValue(config, "USE_CUDA") == "ON");
  torch_info.Set("linkedVia", CXRMASK_TORCH_HOW);
  out.Set("torch", torch_info);

  Napi::Object cuda = Napi::Object::New(env);
  const bool available = torch::cuda::is_available();
  const int count = available ? static_cast<int>(torch::cuda::device_count()) : 0;
  cuda.Set("available", available);
  cuda.Set("deviceCount", count);
  cuda.Set("version", ConfigValue(config, "CUDA_VERSION"));
  cuda.Set("cudnn", available && torch::cuda::cudnn_is_available());
  Napi::Array devices = Napi::Array::New(env);
  auto names = CudaDeviceNames(count);
  for (int i = 0; i < count; ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", i);
    d.Set("name", names[i]);
    devices.Set(static_cast<uint32_t>(i), d);
  }
  cuda.Set("devices", devices);
  const Tf32State tf32 = GetTf32();
  Napi::Object tf32_info = Napi::Object::New(env);
  tf32_info.Set("cudnn", tf32.cudnn);
  tf32_info.Set("cublas", tf32.cublas);
  cuda.Set("tf32", tf32_info);
  out.Set("cuda", cuda);

  Napi::Object blas = Napi::Object::New(env);
  const std::string blas_name = ConfigValue(config, "BLAS_INFO");
  blas.Set("blas", blas_name);
  blas.Set("lapack", ConfigValue(config, "LAPACK_INFO"));
  blas.Set("mkl", at::hasMKL());
  blas.Set("mkldnn", at::hasMKLDNN());
  blas.Set("mkldnnVersion", at::get_mkldnn_version());
  static const std::regex fast_re("mkl|openblas|accelerate|blis|armpl|flexi", std::regex::icase);
  blas.Set("fast", std::regex_search(blas_name, fast_re));
  out.Set("blas", blas);

  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("bf16", Bf16Supported(c10::Device(c10::kCPU)));
  std::smatch m;
  static const std::regex cap_re("CPU capability usage: (\\S+)");
  cpu.Set("capability", std::regex_search(config, m, cap_re) ? m[1].str() : "");
  out.Set("cpu", cpu);

  Napi::Object threads = Napi::Object::New(env);
  threads.Set("intraOp", at::get_num_threads());
  threads.Set("interOp", at::get_num_interop_threads());
  threads.Set("requested", RequestedThreads());
  out.Set("threads", threads);

  out.Set("buildConfig", config);
  out.Set("parallelInfo", at::get_parallel_info());
  return out;
}

}  // namespace cxrmask
