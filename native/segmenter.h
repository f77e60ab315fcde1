// Lung/heart segmenter: a TorchScript module with `segment(x)` -> per-pixel logits [n,3,S,S]
// (right lung, left lung, heart; tools/segmenter_export.py), trained with BCE-with-logits + soft
// Dice and AdamW. Pure C++; the N-API side lives in js_segmenter.cc.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fused_adamw.h"
#include "pixels.h"

namespace cxrmask {

// Every field is set from the JS option object (js_segmenter.cc): the defaults live in
// ts/model/defaults.ts only.
struct SegmenterOptions {
  std::string model_path;
  std::string device;
  double lr{};
  double weight_decay{};
  double grad_clip{};  // 0 = off; else max global L2 norm
  bool bf16{};
};

struct SegmentStepResult {
  double loss = 0;
  double dice = 0;  // soft Dice (mean over the 3 structures) of this batch, before the step
  double grad_norm = 0;
  int64_t step = 0;
};

class Segmenter {
 public:
  static std::shared_ptr<Segmenter> Create(const SegmenterOptions& opts);

  // x: [n,3,S,S] images, or cache records (one variant, original) whose mask plane bits 3-5 are the
  // targets. region_bits: uint8 [n,S,S] (bit 0 right lung, 1 left lung, 2 heart); required for
  // float images, overrides the records' own targets when given.
  SegmentStepResult TrainStep(const ImageBatch& x, const std::optional<at::Tensor>& region_bits);
  at::Tensor Logits(const ImageBatch& x);                   // float32 [n,3,S,S] on CPU
  at::Tensor Masks(const ImageBatch& x, double threshold);  // uint8 [n,S,S] region bits on CPU
  // Full state (weights, AdamW moments, step) or, with weights_only, what inference needs.
  void Save(const std::string& path, bool weights_only = false);
  // All or nothing: on any error the segmenter keeps the state it had.
  void Load(const std::string& path);

  int64_t step() const { return step_.load(); }
  int64_t num_params() const { return num_params_; }
  bool bf16_active() const { return bf16_active_; }
  const c10::Device& device() const { return device_; }

 private:
  explicit Segmenter(const SegmenterOptions& opts);
  at::Tensor Forward(const at::Tensor& x);
  std::vector<std::pair<std::string, at::Tensor>> State() const;

  SegmenterOptions opts_;
  c10::Device device_;
  std::optional<torch::jit::Module> module_;
  FusedAdamW adamw_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<at::Tensor> params_;
  int64_t num_params_ = 0;
  // read by the JS thread (info()) while a worker trains
  std::atomic<int64_t> step_{0};
  bool bf16_active_ = false;
  std::mutex mu_;
};

// Region bits uint8 [n,S,S] -> float targets [n,3,S,S] (channel k = bit k) on the bits' device.
at::Tensor RegionTargets(const at::Tensor& bits);

}  // namespace cxrmask
