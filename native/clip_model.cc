#include "clip_model.h"

#include <sys/stat.h>

#include <stdexcept>

#include "runtime.h"
#include "tensor_bridge.h"

namespace cxrmask {

torch::jit::Module LoadTorchScript(const std::string& path, const c10::Device& device) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    throw std::invalid_argument("model file not found: " + path);
  }
  try {
    return torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot load TorchScript model " + path + ": " +
                             e.what_without_backtrace());
  }
}

std::shared_ptr<ClipModel> ClipModel::Load(const std::string& path, const std::string& device) {
  c10::Device d = ResolveDevice(device);
  torch::jit::Module m = LoadTorchScript(path, d);
  for (const char* method : {"encode_image", "encode_text"}) {
    if (!m.find_method(method)) {
      throw std::invalid_argument(path + " is TorchScript but has no method " + method +
                                  " (export it with tools/export_biomedclip.py)");
    }
  }
  m.eval();
  std::shared_ptr<ClipModel> model(new ClipModel(std::move(m), d));
  if (model->module_.hasattr("logit_scale")) {
    model->logit_scale_ = model->module_.attr("logit_scale").toTensor().item<double>();
  }
  return model;
}

ClipModel::ClipModel(torch::jit::Module m, c10::Device d) : module_(std::move(m)), device_(d) {}

bool ClipModel::bf16_supported() const { return Bf16Supported(device_); }

at::Tensor ClipModel::EncodeImage(const ImageBatch& x, bool bf16) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyWorkerSettings();
  // Thread-local guards: created here, on the worker thread that runs the op.
  c10::InferenceMode inference;
  auto images = x.On(device_);
  AutocastGuard autocast(device_.type(), bf16 && Bf16Supported(device_));
  auto out = module_.get_method("encode_image")({images}).toTensor();
  return out.to(at::kFloat);
}

at::Tensor ClipModel::EncodeText(const at::Tensor& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyWorkerSettings();
  c10::InferenceMode inference;
  return module_.get_method("encode_text")({ids.to(device_)}).toTensor().to(at::kFloat);
}

}  // namespace cxrmask
