// The two scores attribution explains (attribution.h), as members so they can reach the towers.
#include <cmath>
#include <stdexcept>
#include <string>

#include "classifier.h"
#include "clip_model.h"
#include "runtime.h"

namespace cxrmask {

AttributionResult Classifier::Attribute(const ImageBatch& x_in, int64_t label,
                                        const AttributionOptions& opts) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!encoder_) {
    throw std::invalid_argument(
        "attribution needs an image encoder (this classifier is head-only)");
  }
  if (label < 0 || label >= opts_.num_labels) {
    throw std::invalid_argument("label " + std::to_string(label) + " is not in [0," +
                                std::to_string(opts_.num_labels) + ")");
  }
  ApplyWorkerSettings(/*training=*/true);  // a backward pass runs
  encoder_->eval();
  head_->eval();
  auto x = x_in.On(device_);
  const bool bf16 = bf16_active_;
  // The logit, not the probability: the sigmoid saturates and would flatten every map.
  ScoreFn f = [this, label, bf16](const at::Tensor& images) {
    AutocastGuard autocast(device_.type(), bf16);
    auto feats = encoder_->forward({images}).toTensor();
    return head_->forward(feats).to(at::kFloat).select(1, label);
  };
  return cxrmask::Attribute(f, x, opts);
}

AttributionResult ClipModel::Attribute(const ImageBatch& x_in, const at::Tensor& text,
                                       const AttributionOptions& opts,
                                       std::optional<double> linear_bias) {
  std::lock_guard<std::mutex> lock(mu_);
  if (text.dim() != 2 || (text.size(0) != 1 && text.size(0) != 2)) {
    throw std::invalid_argument(
        "text must be prompt embeddings [1,D] or [2,D] (positive, negative)");
  }
  ApplyWorkerSettings(/*training=*/true);
  auto x = x_in.On(device_);
  const bool bf16 = opts.bf16 && Bf16Supported(device_);
  if (linear_bias) {
    if (text.size(0) != 1) throw std::invalid_argument("a linear score takes one weight row [1,D]");
    auto w = text.to(device_, at::kFloat);
    const double b = *linear_bias;
    ScoreFn lin = [this, w, b, bf16](const at::Tensor& images) {
      AutocastGuard autocast(device_.type(), bf16);
      auto e = module_.get_method("encode_image")({images}).toTensor().to(at::kFloat);
      return e.matmul(w.t()).select(1, 0) + b;
    };
    return cxrmask::Attribute(lin, x, opts);
  }
  auto t = torch::nn::functional::normalize(text.to(device_, at::kFloat),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto sign =
      text.size(0) == 1 ? at::ones({1}, t.options()) : at::tensor({1.0f, -1.0f}, t.options());
  const double scale = std::exp(logit_scale_);
  ScoreFn f = [this, t, sign, scale, bf16](const at::Tensor& images) {
    AutocastGuard autocast(device_.type(), bf16);
    auto e = module_.get_method("encode_image")({images}).toTensor().to(at::kFloat);
    auto cos =
        torch::nn::functional::normalize(e, torch::nn::functional::NormalizeFuncOptions().dim(1))
            .matmul(t.t());
    return (cos * sign).sum(1) * scale;
  };
  return cxrmask::Attribute(f, x, opts);
}

}  // namespace cxrmask
