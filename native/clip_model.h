// BiomedCLIP TorchScript towers (pure C++, no N-API): load, encode_image, encode_text.
#pragma once

#include <torch/script.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "attribution.h"
#include "pixels.h"

namespace cxrmask {

class ClipModel {
 public:
  // Throws std::runtime_error / std::invalid_argument with a message naming the file.
  static std::shared_ptr<ClipModel> Load(const std::string& path, const std::string& device);

  // x: float32 [n,3,S,S] or cache records (see pixels.h). Returns [rows,D] (device tensor).
  at::Tensor EncodeImage(const ImageBatch& x, bool bf16);
  // ids: int64 [n,L]. Returns [n,D].
  at::Tensor EncodeText(const at::Tensor& ids);
  // Attribution of the zero-shot logit to the pixels (model_attribution.cc). text: prompt
  // embeddings [1,D] (score s·cos(img,t0)) or [2,D] (s·(cos(img,t0) - cos(img,t1)), the per-finding
  // positive-vs-negative logit), s = exp(logit_scale).
  // With linear_bias: a linear probe's logit instead, embedding·text[0] + bias (text [1,D]).
  AttributionResult Attribute(const ImageBatch& x, const at::Tensor& text,
                              const AttributionOptions& opts,
                              std::optional<double> linear_bias = std::nullopt);

  const c10::Device& device() const { return device_; }
  double logit_scale() const { return logit_scale_; }
  bool bf16_supported() const;

 private:
  ClipModel(torch::jit::Module m, c10::Device d);
  torch::jit::Module module_;
  c10::Device device_;
  double logit_scale_ = 0;
  std::mutex mu_;  // one op at a time per model (JS also queues; this is the safety net)
};

// Loads a TorchScript file with a readable error for missing / non-TorchScript files.
torch::jit::Module LoadTorchScript(const std::string& path, const c10::Device& device);

}  // namespace cxrmask
