#include "segmenter.h"

#include <stdexcept>

#include "checkpoint.h"
#include "clip_model.h"
#include "runtime.h"
#include "tensor_bridge.h"

namespace cxrmask {
namespace {
constexpr int64_t kFormatVersion = 1;
constexpr int64_t kStructures = 3;

// The training loss of tools/segmenter_export.py seg_loss: BCE (mean over pixels) + 1 - soft Dice
// (per structure over the whole batch, smoothing 1; mean over the structures). Returns {loss,
// dice}.
std::pair<at::Tensor, at::Tensor> SegLoss(const at::Tensor& logits, const at::Tensor& targets) {
  auto bce = torch::binary_cross_entropy_with_logits(logits, targets);
  auto p = torch::sigmoid(logits);
  auto inter = (p * targets).sum({0, 2, 3});
  auto denom = p.sum({0, 2, 3}) + targets.sum({0, 2, 3});
  auto dice = ((2 * inter + 1) / (denom + 1)).mean();
  return {bce + (1 - dice), dice};
}
}  // namespace

at::Tensor RegionTargets(const at::Tensor& bits) {
  std::vector<at::Tensor> planes;
  for (int64_t k = 0; k < kStructures; ++k) {
    planes.push_back(bits.bitwise_right_shift(k).bitwise_and(1).to(at::kFloat));
  }
  return at::stack(planes, 1);
}

Segmenter::Segmenter(const SegmenterOptions& opts)
    : opts_(opts), device_(ResolveDevice(opts.device)) {}

std::shared_ptr<Segmenter> Segmenter::Create(const SegmenterOptions& opts) {
  std::shared_ptr<Segmenter> s(new Segmenter(opts));
  ApplyWorkerSettings();
  s->bf16_active_ = opts.bf16 && Bf16Supported(s->device_);
  torch::jit::Module m = LoadTorchScript(opts.model_path, s->device_);
  if (!m.find_method("segment")) {
    throw std::invalid_argument(opts.model_path +
                                " has no `segment` method (export it with "
                                "tools/segmenter_export.py)");
  }
  s->module_ = m;
  for (const auto& p : m.parameters()) {
    p.requires_grad_(true);
    s->params_.push_back(p);
    s->num_params_ += p.numel();
  }
  if (s->params_.empty()) throw std::invalid_argument(opts.model_path + " has no parameters");
  s->optimizer_ = std::make_unique<torch::optim::AdamW>(
      s->params_, torch::optim::AdamWOptions(opts.lr).weight_decay(opts.weight_decay));
  return s;
}

at::Tensor Segmenter::Forward(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3) throw std::invalid_argument("images must be [n,3,S,S]");
  auto out = module_->get_method("segment")({x}).toTensor();
  if (out.dim() != 4 || out.size(0) != x.size(0) || out.size(1) != kStructures ||
      out.size(2) != x.size(2) || out.size(3) != x.size(3)) {
    throw std::runtime_error("segment(x) must return logits [n,3,S,S]");
  }
  return out.to(at::kFloat);
}

SegmentStepResult Segmenter::TrainStep(const ImageBatch& x_in,
                                       const std::optional<at::Tensor>& region_bits) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyWorkerSettings(/*training=*/true);
  at::Tensor bits;
  if (region_bits) {
    bits = *region_bits;
  } else if (x_in.pixels) {
    bits = x_in.data.select(1, 1).bitwise_right_shift(kFillShift);
  } else {
    throw std::invalid_argument("trainStep on float images needs regionBits [n,S,S]");
  }
  if (bits.gt(kContourBits).any().item<bool>()) {
    throw std::invalid_argument("region bits must be 0..7 (1 right lung, 2 left lung, 4 heart)");
  }
  torch::AutoGradMode grad_mode(true);
  module_->train();
  auto x = x_in.On(device_);
  if (bits.size(0) != x.size(0) || bits.size(1) != x.size(2) || bits.size(2) != x.size(3)) {
    throw std::invalid_argument("regionBits must be [n,S,S] for images [n,3,S,S]");
  }
  auto targets = RegionTargets(bits.to(device_));
  at::Tensor loss, dice;
  {
    AutocastGuard autocast(device_.type(), bf16_active_);
    auto logits = Forward(x);
    std::tie(loss, dice) = SegLoss(logits, targets);
  }
  optimizer_->zero_grad();
  loss.backward();
  SegmentStepResult r;
  at::Tensor norm;
  if (opts_.grad_clip > 0) norm = ClipGradNorm(params_, opts_.grad_clip);
  adamw_.Step(*optimizer_);
  // Read once, after the whole step is queued.
  std::vector<at::Tensor> out{loss.detach().to(at::kFloat), dice.detach().to(at::kFloat)};
  if (norm.defined()) out.push_back(norm);
  auto host = at::stack(out).to(at::kCPU, at::kDouble).contiguous();
  r.loss = host[0].item<double>();
  r.dice = host[1].item<double>();
  if (norm.defined()) r.grad_norm = host[2].item<double>();
  r.step = ++step_;
  return r;
}

at::Tensor Segmenter::Logits(const ImageBatch& x_in) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyWorkerSettings();
  torch::NoGradGuard no_grad;
  module_->eval();
  auto x = x_in.On(device_);
  AutocastGuard autocast(device_.type(), bf16_active_);
  return Forward(x).to(at::kCPU).contiguous();
}

at::Tensor Segmenter::Masks(const ImageBatch& x_in, double threshold) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyWorkerSettings();
  torch::NoGradGuard no_grad;
  module_->eval();
  auto x = x_in.On(device_);
  AutocastGuard autocast(device_.type(), bf16_active_);
  // sigmoid(l) > t  <=>  l > logit(t): one comparison on the logits.
  const double cut = std::log(threshold / (1 - threshold));
  auto on = Forward(x).gt(cut).to(at::kByte);  // [n,3,S,S]
  auto bits = on.select(1, 0) + on.select(1, 1) * 2 + on.select(1, 2) * 4;
  return bits.to(at::kByte).to(at::kCPU).contiguous();
}

std::vector<std::pair<std::string, at::Tensor>> Segmenter::State() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module_->named_parameters()) out.emplace_back("net." + p.name, p.value);
  for (const auto& b : module_->named_buffers()) out.emplace_back("net." + b.name, b.value);
  return out;
}

void Segmenter::Save(const std::string& path, bool weights_only) {
  std::lock_guard<std::mutex> lock(mu_);
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(kFormatVersion));
  ar.write("kind", c10::IValue(std::string("segmenter")));
  ar.write("weightsOnly", c10::IValue(weights_only));
  ar.write("step", c10::IValue(step_.load()));
  ar.write("numParams", c10::IValue(num_params_));
  SaveCheckpoint(ar, State(), weights_only ? nullptr : optimizer_.get(), path);
}

void Segmenter::Load(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  torch::serialize::InputArchive ar;
  OpenCheckpoint(ar, path, device_, "segmenter state");
  c10::IValue kind, format, num_params, weights_only_v(false), step_v;
  if (!ar.try_read("kind", kind) || !kind.isString() || kind.toStringRef() != "segmenter") {
    throw std::invalid_argument(path + " is not a segmenter checkpoint");
  }
  ar.read("format", format);
  ar.read("numParams", num_params);
  if (format.toInt() != kFormatVersion || num_params.toInt() != num_params_) {
    throw std::invalid_argument(path + " was saved by another segmenter model (format or size)");
  }
  ar.try_read("weightsOnly", weights_only_v);
  const bool weights_only = weights_only_v.isBool() && weights_only_v.toBool();
  // Read and check every tensor before touching the model, so a bad file changes nothing.
  auto state = State();
  const std::vector<at::Tensor> incoming = ReadParams(ar, state, path);
  auto loaded = ReadOptimizer(ar, *optimizer_, opts_.lr, weights_only);
  ar.read("step", step_v);
  const int64_t step = step_v.toInt();  // before anything is committed: all or nothing
  CommitParams(state, incoming);
  if (loaded) optimizer_ = std::move(loaded);
  step_ = step;
}

}  // namespace cxrmask
