// Input attribution (pure C++, no N-API): which input pixels a scalar model output depends on.
// Vanilla gradient (Simonyan 2014), SmoothGrad (Smilkov 2017) and Integrated Gradients
// (Sundararajan 2017) over any differentiable score f: images [m,3,S,S] -> [m]. The classifier's
// logit of one finding and the CLIP zero-shot logit are such scores (classifier.h, clip_model.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>

namespace cxrmask {

enum class AttributionMethod { kGradient, kSmoothGrad, kIntegratedGradients };

// Every field is set from the JS option object (js_attribution.cc): the defaults live in
// ts/model/defaults.ts only.
struct AttributionOptions {
  AttributionMethod method{};
  int64_t samples{};  // SmoothGrad: noisy copies per image
  // SmoothGrad: noise std as a fraction of each image's value range (max - min), Smilkov's σ.
  double sigma{};
  int64_t steps{};  // IG: midpoint Riemann steps along the straight path
  // IG baseline in normalised space, [3,S,S] (every image) or [rows,3,S,S]; none = zeros.
  std::optional<at::Tensor> baseline;
  int64_t batch{};  // rows per forward/backward (IG steps and SmoothGrad samples are batched)
  uint64_t seed{};  // SmoothGrad noise: a CPU generator, so maps agree across devices
  bool want_signed{};
  bool bf16{};
};

struct AttributionResult {
  at::Tensor map;      // [rows,S,S] float32 CPU: per pixel, the sum over channels of |attribution|
  at::Tensor signed_;  // [rows,3,S,S] float32 CPU when asked: the attribution itself
  at::Tensor score;    // [rows]: f(x)
  at::Tensor baseline_score;  // [rows], IG only: f(baseline); sum(signed) ≈ score - baseline_score
};

// f maps float32 images [m,3,S,S] (requires grad) to scores [m]; rows must be independent (eval
// mode).
using ScoreFn = std::function<at::Tensor(const at::Tensor&)>;

// x: float32 [rows,3,S,S] on the model's device. Runs with grad mode on; only the input's gradient
// is computed (parameters' .grad are untouched).
AttributionResult Attribute(const ScoreFn& f, const at::Tensor& x, const AttributionOptions& opts);

}  // namespace cxrmask
