#include "classifier.h"

#include <limits>
#include <stdexcept>

#include "checkpoint.h"
#include "clip_model.h"
#include "runtime.h"
#include "tensor_bridge.h"

namespace cxrmask {
namespace {
std::mutex g_seed_mu;  // manual_seed + init touch the global generator

constexpr int64_t kFormatVersion = 1;
}  // namespace

Classifier::Classifier(const ClassifierOptions& opts)
    : opts_(opts), device_(ResolveDevice(opts.device)) {}

std::shared_ptr<Classifier> Classifier::Create(const ClassifierOptions& opts) {
  std::shared_ptr<Classifier> c(new Classifier(opts));
  ApplyWorkerSettings();
  c->bf16_active_ = opts.bf16 && Bf16Supported(c->device_);
  if (!opts.model_path.empty()) {
    torch::jit::Module clip = LoadTorchScript(opts.model_path, c->device_);
    if (!clip.hasattr("visual")) {
      throw std::invalid_argument(opts.model_path + " has no `visual` submodule (image tower)");
    }
    torch::jit::Module visual = clip.attr("visual").toModule();
    c->encoder_ = visual;
    // Probe the feature size with one small forward.
    {
      c10::InferenceMode guard;
      visual.eval();
      auto probe =
          at::zeros({1, 3, opts.image_size, opts.image_size}, at::TensorOptions(c->device_));
      c->input_dim_ = visual.forward({probe}).toTensor().size(1);
    }
    if (opts.input_dim > 0 && opts.input_dim != c->input_dim_) {
      throw std::invalid_argument("inputDim " + std::to_string(opts.input_dim) +
                                  " does not match the encoder's output size " +
                                  std::to_string(c->input_dim_));
    }
  } else {
    if (opts.input_dim <= 0) throw std::invalid_argument("head-only classifier needs inputDim > 0");
    c->input_dim_ = opts.input_dim;
  }
  {
    std::lock_guard<std::mutex> lock(g_seed_mu);
    torch::manual_seed(static_cast<uint64_t>(opts.seed));
    c->head_ = torch::nn::Linear(c->input_dim_, opts.num_labels);
  }
  c->head_->to(c->device_);

  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (c->encoder_) {
    std::vector<at::Tensor> enc;
    for (const auto& p : c->encoder_->parameters()) {
      p.requires_grad_(!opts.freeze_encoder);
      if (!opts.freeze_encoder) enc.push_back(p);
    }
    if (!enc.empty()) {
      auto o = std::make_unique<torch::optim::AdamWOptions>(opts.lr_encoder);
      o->weight_decay(opts.weight_decay);
      c->trainable_.insert(c->trainable_.end(), enc.begin(), enc.end());
      groups.emplace_back(enc, std::move(o));
    }
  }
  std::vector<at::Tensor> head = c->head_->parameters();
  c->trainable_.insert(c->trainable_.end(), head.begin(), head.end());
  auto o = std::make_unique<torch::optim::AdamWOptions>(opts.lr_head);
  o->weight_decay(opts.weight_decay);
  groups.emplace_back(head, std::move(o));
  c->optimizer_ = std::make_unique<torch::optim::AdamW>(
      std::move(groups), torch::optim::AdamWOptions(opts.lr_head).weight_decay(opts.weight_decay));
  return c;
}

at::Tensor Classifier::Features(const at::Tensor& x, bool train) {
  if (!encoder_) {
    if (x.dim() != 2 || x.size(1) != input_dim_) {
      throw std::invalid_argument("head-only classifier expects features [n," +
                                  std::to_string(input_dim_) + "]");
    }
    return x;
  }
  const bool encoder_trains = train && !opts_.freeze_encoder;
  if (encoder_trains) {
    encoder_->train();
    return encoder_->forward({x}).toTensor();
  }
  encoder_->eval();
  torch::NoGradGuard no_grad;
  return encoder_->forward({x}).toTensor();
}

StepResult Classifier::TrainStep(const ImageBatch& x_in, const at::Tensor& labels_in,
                                 const std::optional<at::Tensor>& mask_in) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyWorkerSettings(/*training=*/true);
  RequireFinite(labels_in, "labels");
  // BCE targets are probabilities: a raw CheXpert -1 ("uncertain") would train towards nonsense.
  RequireUnitInterval(labels_in, "labels");
  // A NaN/negative mask would poison the loss and, through the step, every weight.
  if (mask_in) {
    RequireFinite(*mask_in, "labelMask");
    if (mask_in->lt(0).any().item<bool>()) {
      throw std::invalid_argument("labelMask must be >= 0");
    }
  }
  torch::AutoGradMode grad_mode(true);
  head_->train();
  // Data-parallel: a replica without rows this step still joins its collectives.
  const bool idle = sync_ && x_in.rows() == 0;
  if (!sync_ && x_in.rows() == 0) throw std::invalid_argument("a step without rows needs a group");
  at::Tensor loss;
  if (idle) {
    loss = SyncedLoss(at::zeros({0, opts_.num_labels}, at::TensorOptions(device_)), std::nullopt);
  } else {
    auto x = x_in.On(device_);
    auto labels = labels_in.to(device_);
    AutocastGuard autocast(device_.type(), bf16_active_);
    auto feats = Features(x, /*train=*/true);
    auto logits = head_->forward(feats).to(at::kFloat);
    auto per = torch::binary_cross_entropy_with_logits(logits, labels, {}, {}, at::Reduction::None);
    if (sync_) {
      loss = SyncedLoss(per, mask_in);
    } else if (mask_in) {
      auto mask = mask_in->to(device_);
      loss = (per * mask).sum() / mask.sum().clamp_min(1.0);
    } else {
      loss = per.mean();
    }
  }
  optimizer_->zero_grad();
  if (!idle) loss.backward();
  if (sync_) AverageGradients(loss);
  StepResult r;
  if (opts_.grad_clip > 0) r.grad_norm = ClipGradNorm(trainable_, opts_.grad_clip);
  adamw_.Step(*optimizer_);
  r.loss = loss.detach();
  r.step = ++step_;
  // Bounded even when the caller never reads: past the cap the oldest are dropped.
  constexpr size_t kMaxUnread = 4096;
  if (unread_losses_.size() >= kMaxUnread) unread_losses_.erase(unread_losses_.begin());
  unread_losses_.push_back(r.loss);
  last_grad_norm_ = r.grad_norm;
  return r;
}

std::pair<std::vector<double>, double> Classifier::ReadLosses() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<at::Tensor> all = unread_losses_;
  const bool norm = last_grad_norm_.defined();
  if (norm) all.push_back(last_grad_norm_);
  std::vector<double> losses;
  double grad_norm = std::numeric_limits<double>::quiet_NaN();
  if (!all.empty()) {
    auto host = at::stack(all).to(at::kCPU, at::kDouble).contiguous();
    const double* v = host.data_ptr<double>();
    losses.assign(v, v + unread_losses_.size());
    if (norm) grad_norm = v[unread_losses_.size()];
  }
  unread_losses_.clear();
  return {std::move(losses), grad_norm};
}

// The group's loss is sum(per*mask) over all replicas' rows / the group's mask count. Each replica
// differentiates its own sum scaled by world/count; averaging the gradients (AverageGradients)
// then gives exactly the gradient one process computes on the union batch, also when replicas
// hold different numbers of rows or labelled entries.
at::Tensor Classifier::SyncedLoss(const at::Tensor& per, const std::optional<at::Tensor>& mask_in) {
  at::Tensor sum, count;
  if (mask_in) {
    auto mask = mask_in->to(device_);
    sum = (per * mask).sum();
    count = mask.sum().to(at::kDouble);
  } else {
    sum = per.sum();
    count = at::full({}, static_cast<double>(per.numel()),
                     at::TensorOptions(device_).dtype(at::kDouble));
  }
  count = count.reshape({1}).clone();
  sync_->AllReduceSum({count});
  const double world = sync_->world_size();
  return sum * (world / count.clamp_min(1.0)).to(at::kFloat).squeeze();
}

// Sums gradients (flattened into buckets) and the loss across replicas and divides by the world
// size. A parameter no replica produced a gradient for keeps none, as in a single process (AdamW
// skips it); one only this replica lacks (it had no rows) counts as zeros.
void Classifier::AverageGradients(const at::Tensor& loss) {
  torch::NoGradGuard no_grad;
  // Which gradients this replica has is known on the host; only a step where some are missing
  // (an idle replica, a parameter outside the graph) needs the group's answer back on the host.
  std::vector<float> used_host(trainable_.size(), 1.0f);
  bool all_used = true;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    auto& p = trainable_[i];
    if (!p.grad().defined()) {
      used_host[i] = 0;
      all_used = false;
      p.mutable_grad() = at::zeros_like(p);
    }
  }
  auto used = at::from_blob(used_host.data(), {static_cast<int64_t>(used_host.size())},
                            at::TensorOptions().dtype(at::kFloat))
                  .to(device_);
  std::vector<at::Tensor> all;
  all.reserve(trainable_.size() + 2);
  for (auto& p : trainable_) all.push_back(p.grad());
  all.push_back(used);
  all.push_back(loss.detach().reshape({1}));
  sync_->AllReduceSum(all);
  std::vector<at::Tensor> grads;
  grads.reserve(trainable_.size());
  for (auto& p : trainable_) grads.push_back(p.grad());
  at::_foreach_mul_(grads, 1.0 / sync_->world_size());
  loss.detach().mul_(1.0 / sync_->world_size());
  if (all_used) return;  // every replica's OR includes ours: every parameter has a gradient
  auto used_cpu = used.to(at::kCPU);
  const float* u = used_cpu.data_ptr<float>();
  for (size_t i = 0; i < trainable_.size(); ++i) {
    if (u[i] == 0) trainable_[i].mutable_grad().reset();
  }
}

void Classifier::AttachSync(std::shared_ptr<GradientSync> sync) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sync) {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> state;
    for (const auto& kv : State()) state.push_back(kv.second);
    sync->BroadcastFromRoot(state);
  }
  sync_ = std::move(sync);
}

at::Tensor Classifier::Predict(const ImageBatch& x_in) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyWorkerSettings();
  torch::NoGradGuard no_grad;
  head_->eval();
  auto x = x_in.On(device_);
  AutocastGuard autocast(device_.type(), bf16_active_);
  auto feats = Features(x, /*train=*/false);
  return torch::sigmoid(head_->forward(feats).to(at::kFloat)).to(at::kCPU).contiguous();
}

at::Tensor Classifier::Embed(const ImageBatch& x_in) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyWorkerSettings();
  if (!encoder_)
    throw std::invalid_argument("embed() needs an image encoder (head-only classifier)");
  torch::NoGradGuard no_grad;
  auto x = x_in.On(device_);
  AutocastGuard autocast(device_.type(), bf16_active_);
  return Features(x, false).to(at::kFloat).to(at::kCPU).contiguous();
}

std::vector<std::pair<std::string, at::Tensor>> Classifier::State() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (encoder_) {
    for (const auto& p : encoder_->named_parameters())
      out.emplace_back("encoder." + p.name, p.value);
    for (const auto& b : encoder_->named_buffers()) out.emplace_back("encoder." + b.name, b.value);
  }
  for (const auto& p : head_->named_parameters()) out.emplace_back("head." + p.key(), p.value());
  return out;
}

void Classifier::Save(const std::string& path, bool weights_only) {
  std::lock_guard<std::mutex> lock(mu_);
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(kFormatVersion));
  ar.write("weightsOnly", c10::IValue(weights_only));
  ar.write("step", c10::IValue(step_.load()));
  ar.write("headOnly", c10::IValue(head_only()));
  ar.write("inputDim", c10::IValue(input_dim_));
  ar.write("numLabels", c10::IValue(opts_.num_labels));
  ar.write("freezeEncoder", c10::IValue(opts_.freeze_encoder));
  ar.write("kind", c10::IValue(std::string(kind())));
  SaveCheckpoint(ar, State(), weights_only ? nullptr : optimizer_.get(), path);
}

void Classifier::Load(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  torch::serialize::InputArchive ar;
  OpenCheckpoint(ar, path, device_, "classifier state");
  // Header fields read with try_read: a foreign archive (a segmenter's state, clip.pt) lacks them,
  // and ar.read's error names neither the file nor what it is.
  auto field = [&](const char* key, bool (c10::IValue::*is)() const, const char* type) {
    c10::IValue v;
    if (!ar.try_read(key, v)) {
      throw std::invalid_argument(path + " is not a classifier checkpoint (no " + key + " field)");
    }
    if (!(v.*is)()) {
      throw std::invalid_argument(path + " is not a classifier checkpoint (field " + key +
                                  " is not " + type + ")");
    }
    return v;
  };
  c10::IValue kind;
  if (ar.try_read("kind", kind) && kind.isString() && kind.toStringRef() != "linear-probe" &&
      kind.toStringRef() != "finetune") {
    throw std::invalid_argument(path + " is not a classifier checkpoint (it records kind '" +
                                kind.toStringRef() + "')");
  }
  const int64_t format = field("format", &c10::IValue::isInt, "an int").toInt();
  const bool head_only_v = field("headOnly", &c10::IValue::isBool, "a bool").toBool();
  const bool frozen_v = field("freezeEncoder", &c10::IValue::isBool, "a bool").toBool();
  const int64_t input_dim = field("inputDim", &c10::IValue::isInt, "an int").toInt();
  const int64_t num_labels = field("numLabels", &c10::IValue::isInt, "an int").toInt();
  const int64_t step = field("step", &c10::IValue::isInt, "an int").toInt();
  if (format != kFormatVersion || head_only_v != head_only() || input_dim != input_dim_ ||
      num_labels != opts_.num_labels || frozen_v != opts_.freeze_encoder) {
    throw std::invalid_argument(path +
                                " was saved by a classifier with another configuration "
                                "(mode, inputDim, numLabels or freezeEncoder differ)");
  }
  c10::IValue weights_only_v(false);
  ar.try_read("weightsOnly", weights_only_v);
  const bool weights_only = weights_only_v.isBool() && weights_only_v.toBool();
  // Read and check every tensor before touching the model, so a bad file changes nothing.
  auto state = State();
  const std::vector<at::Tensor> incoming = ReadParams(ar, state, path);
  auto loaded = ReadOptimizer(ar, *optimizer_, opts_.lr_head, weights_only);
  CommitParams(state, incoming);
  if (loaded) optimizer_ = std::move(loaded);
  step_ = step;
}

ClassifierCheckpointHeader Classifier::ReadHeader(const std::string& path) {
  const auto fields = ReadCheckpointFields(path, "classifier state");
  // Worded as Load words them: a segmenter's best.pt or clip.pt handed in as a cell's checkpoint is
  // an easy mistake (all live under runs/), and "no headOnly field" did not say what the file is
  // not.
  auto read = [&](const char* key, bool (c10::IValue::*is)() const, const char* type) {
    auto it = fields.find(key);
    if (it == fields.end()) {
      throw std::invalid_argument(path + " is not a classifier checkpoint (no " + key + " field)");
    }
    if (!(it->second.*is)()) {
      throw std::invalid_argument(path + " is not a classifier checkpoint (field " + key +
                                  " is not " + type + ")");
    }
    return it->second;
  };
  auto int_field = [&](const char* key) {
    return read(key, &c10::IValue::isInt, "an int").toInt();
  };
  auto bool_field = [&](const char* key) {
    return read(key, &c10::IValue::isBool, "a bool").toBool();
  };
  auto maybe = [&](const char* key) {
    auto it = fields.find(key);
    return it == fields.end() ? c10::IValue() : it->second;
  };
  ClassifierCheckpointHeader h;
  h.format = int_field("format");
  h.head_only = bool_field("headOnly");
  h.freeze_encoder = bool_field("freezeEncoder");
  h.input_dim = int_field("inputDim");
  h.num_labels = int_field("numLabels");
  h.step = int_field("step");
  const c10::IValue weights_only = maybe("weightsOnly"), kind = maybe("kind");
  h.weights_only = weights_only.isBool() && weights_only.toBool();
  // What the tensors are: a head over fixed features, or a tower trained with its head. A file
  // from before the kind was recorded gets this; a recorded kind must agree with it.
  const std::string structural = h.head_only || h.freeze_encoder ? "linear-probe" : "finetune";
  h.kind_recorded = !kind.isNone();
  if (h.kind_recorded && (!kind.isString() || kind.toStringRef() != structural)) {
    throw std::invalid_argument(
        path + ": records kind " +
        (kind.isString() ? "'" + kind.toStringRef() + "'" : "(not a string)") + " but holds a " +
        structural + " classifier");
  }
  h.kind = structural;
  return h;
}

std::pair<at::Tensor, at::Tensor> Classifier::HeadWeights() {
  std::lock_guard<std::mutex> lock(mu_);
  torch::NoGradGuard no_grad;
  // A copy: on the CPU `to` would return the live parameter, and JS would then share its memory.
  auto host = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kFloat).clone(); };
  return {host(head_->weight), host(head_->bias)};
}

}  // namespace cxrmask
