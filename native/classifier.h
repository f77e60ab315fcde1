// Image tower + linear head (or head only over cached features), trained with masked
// BCE-with-logits and AdamW. Pure C++; the N-API side lives in js_classifier.cc / workers.cc.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "attribution.h"
#include "fused_adamw.h"
#include "gradient_sync.h"
#include "pixels.h"

namespace cxrmask {

// Every field is set from the JS option object (js_classifier.cc): the defaults live in
// ts/model/defaults.ts only.
struct ClassifierOptions {
  std::string model_path;  // empty = head-only over feature vectors of input_dim
  int64_t input_dim{};     // head-only: feature size; otherwise inferred from the encoder
  int64_t num_labels{};
  std::string device;
  double lr_encoder{};
  double lr_head{};
  double weight_decay{};
  bool freeze_encoder{};
  double grad_clip{};  // 0 = off; else max global L2 norm
  bool bf16{};
  int64_t seed{};
  int64_t image_size{};
};

// What a classifier checkpoint says about itself, read without a model to load it into.
struct ClassifierCheckpointHeader {
  int64_t format = 0;
  // "linear-probe" (a head over a fixed image tower: head-only, or the encoder frozen) or
  // "finetune" (encoder and head trained). Written by Save; a file from before that is given
  // the kind its headOnly/freezeEncoder fields say (kind_recorded false).
  std::string kind;
  bool kind_recorded = false;
  bool head_only = false;
  bool freeze_encoder = false;
  bool weights_only = false;
  int64_t input_dim = 0;
  int64_t num_labels = 0;
  int64_t step = 0;
};

// What a training step leaves on the device. Nothing is read on the host inside the step: the
// worker reads the values after the optimizer step has been queued, and only when asked to.
struct StepResult {
  at::Tensor loss;       // 0-dim float32 (the group's loss when data-parallel)
  at::Tensor grad_norm;  // 0-dim float32 before clipping; undefined without gradClip
  int64_t step = 0;
};

class Classifier {
 public:
  static std::shared_ptr<Classifier> Create(const ClassifierOptions& opts);

  // x: [n,3,S,S] images or cache records (pixels.h), or [n,input_dim] features in head-only mode.
  // labels/mask: [n,L].
  StepResult TrainStep(const ImageBatch& x, const at::Tensor& labels,
                       const std::optional<at::Tensor>& mask);
  // Host copies of the losses of every step since the last call (oldest first) and of the last
  // step's gradient norm (NaN without gradClip): one device sync for any number of steps.
  std::pair<std::vector<double>, double> ReadLosses();
  at::Tensor Predict(const ImageBatch& x);  // sigmoid probabilities [rows,L]
  at::Tensor Embed(const ImageBatch& x);    // encoder features [rows,input_dim]
  // Attribution of one label's logit to the pixels (model_attribution.cc; needs the encoder).
  AttributionResult Attribute(const ImageBatch& x, int64_t label, const AttributionOptions& opts);
  // Full state (weights, AdamW moments, step) or, with weights_only, what inference needs.
  void Save(const std::string& path, bool weights_only = false);
  // All or nothing: on any error the classifier keeps the state it had.
  void Load(const std::string& path);
  // The header fields of a checkpoint Save wrote (reads the archive on the CPU).
  static ClassifierCheckpointHeader ReadHeader(const std::string& path);
  // Copies of the head's weight [num_labels,input_dim] and bias [num_labels], float32 on the CPU.
  std::pair<at::Tensor, at::Tensor> HeadWeights();
  // What Save records as "kind": a head over a fixed tower is a linear probe.
  const char* kind() const {
    return head_only() || opts_.freeze_encoder ? "linear-probe" : "finetune";
  }
  // Data-parallel training (null detaches): copies rank 0's weights into this replica, then every
  // TrainStep averages gradients and loss across replicas before the optimizer step. A replica
  // with no rows for a step still joins it (x with 0 rows) and contributes nothing.
  void AttachSync(std::shared_ptr<GradientSync> sync);

  bool head_only() const { return !encoder_.has_value(); }
  int64_t input_dim() const { return input_dim_; }
  int64_t num_labels() const { return opts_.num_labels; }
  int64_t step() const { return step_.load(); }
  bool bf16_active() const { return bf16_active_; }
  const c10::Device& device() const { return device_; }
  const ClassifierOptions& options() const { return opts_; }

 private:
  explicit Classifier(const ClassifierOptions& opts);
  at::Tensor Features(const at::Tensor& x, bool train);
  std::vector<std::pair<std::string, at::Tensor>> State() const;
  at::Tensor SyncedLoss(const at::Tensor& per, const std::optional<at::Tensor>& mask);
  void AverageGradients(const at::Tensor& loss);

  ClassifierOptions opts_;
  c10::Device device_;
  std::optional<torch::jit::Module> encoder_;
  torch::nn::Linear head_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<at::Tensor> trainable_;
  FusedAdamW adamw_;
  std::vector<at::Tensor> unread_losses_;  // device scalars, read by ReadLosses
  at::Tensor last_grad_norm_;
  int64_t input_dim_ = 0;
  // read by the JS thread (info()) while a worker trains
  std::atomic<int64_t> step_{0};
  bool bf16_active_ = false;
  std::mutex mu_;
  std::shared_ptr<GradientSync> sync_;
};

}  // namespace cxrmask
