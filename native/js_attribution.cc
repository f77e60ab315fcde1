#include "js_attribution.h"

#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "js_objects.h"
#include "tensor_bridge.h"
#include "workers.h"

namespace cxrmask {
namespace {

// Options were validated and filled in TS (ts/model/attribution.ts); every key is read strictly,
// and the range checks here only keep C++ safe.
AttributionOptions ParseOptions(const Napi::Value& v, const std::vector<int64_t>& image_shape) {
  Napi::Env env = v.Env();
  if (!v.IsObject()) throw ArgTypeError(env, "attribution options must be an object");
  auto o = v.As<Napi::Object>();
  AttributionOptions opts;
  const std::string method = StringKey(o, "method");
  if (method == "gradient") {
    opts.method = AttributionMethod::kGradient;
  } else if (method == "smoothgrad") {
    opts.method = AttributionMethod::kSmoothGrad;
  } else if (method == "ig") {
    opts.method = AttributionMethod::kIntegratedGradients;
  } else {
    throw ArgRangeError(env, "method must be 'gradient', 'smoothgrad' or 'ig'");
  }
  opts.samples = IntKey(o, "samples", 1, kMaxCount);
  opts.sigma = NumberKey(o, "sigma");
  opts.steps = IntKey(o, "steps", 1, kMaxCount);
  opts.batch = IntKey(o, "batch", 1, kMaxCount);
  opts.seed = static_cast<uint64_t>(IntKey(o, "seed", 0, kMaxSeed));
  opts.want_signed = BoolKey(o, "signed");
  opts.bf16 = BoolKey(o, "bf16");
  if (!(opts.sigma >= 0)) throw ArgRangeError(env, "sigma must be >= 0");
  Napi::Value b = RequiredKey(o, "baseline");
  if (!b.IsNull()) {
    auto copy = InputCopy::From(b, napi_float32_array, "baseline");
    const int64_t s = image_shape.back();
    const int64_t one = 3 * s * s;
    const auto len = static_cast<int64_t>(copy.length());
    if (len == one) {
      opts.baseline = copy.View({3, s, s});
    } else if (one > 0 && len % one == 0) {
      opts.baseline = copy.View({len / one, 3, s, s});
    } else {
      throw ArgRangeError(env, "baseline must be [3,S,S] or [rows,3,S,S]");
    }
  }
  return opts;
}

class AttributeWorker : public PromiseWorker {
 public:
  AttributeWorker(Napi::Env env, const char* name, std::string device,
                  std::function<AttributionResult()> run)
      : PromiseWorker(env, name), device_(std::move(device)), run_(std::move(run)) {}

 protected:
  void Run() override { result_ = run_(); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("map", ToFloat32Array(env, result_.map));
    o.Set("score", ToFloat32Array(env, result_.score));
    if (result_.signed_.defined()) o.Set("signed", ToFloat32Array(env, result_.signed_));
    if (result_.baseline_score.defined()) {
      o.Set("baselineScore", ToFloat32Array(env, result_.baseline_score));
    }
    return o;
  }
  std::string DeviceKey() const override { return device_; }

 private:
  std::string device_;
  std::function<AttributionResult()> run_;
  AttributionResult result_;
};

ImageBatch Images(const Napi::CallbackInfo& info, std::vector<int64_t>* shape) {
  *shape = ShapeArg(info[1], "shape");
  ImageBatch x = ImageArg(info[0], *shape, info[2]);
  if (!x.pixels && (shape->size() != 4 || (*shape)[1] != 3)) {
    throw ArgRangeError(info.Env(), "image shape must be [n,3,S,S]");
  }
  return x;
}

}  // namespace

Napi::Value QueueClassifierAttribution(const Napi::CallbackInfo& info,
                                       std::shared_ptr<Classifier> model) {
  std::vector<int64_t> shape;
  ImageBatch x = Images(info, &shape);
  AttributionOptions opts = ParseOptions(info[3], shape);
  const int64_t label = IntKey(info[3].As<Napi::Object>(), "label", 0, kMaxCount);
  std::string device = model->device().str();
  auto* w = new AttributeWorker(
      info.Env(), "cxrmask.Classifier.attribute", device,
      [model, x = std::move(x), label, opts] { return model->Attribute(x, label, opts); });
  w->Keep(info.This().As<Napi::Object>());
  w->Queue();
  return w->Promise();
}

Napi::Value QueueClipAttribution(const Napi::CallbackInfo& info, std::shared_ptr<ClipModel> model) {
  std::vector<int64_t> shape;
  ImageBatch x = Images(info, &shape);
  AttributionOptions opts = ParseOptions(info[3], shape);
  auto o = info[3].As<Napi::Object>();
  auto text_copy = InputCopy::From(RequiredKey(o, "text"), napi_float32_array, "text");
  const int64_t rows = IntKey(o, "textRows", 1, kMaxCount);
  if (rows < 1 || text_copy.length() % static_cast<size_t>(rows) != 0) {
    throw ArgRangeError(info.Env(), "text must hold textRows embeddings");
  }
  at::Tensor text = text_copy.View({rows, static_cast<int64_t>(text_copy.length()) / rows});
  // linearBias a number: a linear probe's logit (embedding·text + bias) instead of the zero-shot
  // one (null).
  const std::optional<double> linear_bias = NullableNumberKey(o, "linearBias");
  std::string device = model->device().str();
  auto* w = new AttributeWorker(info.Env(), "cxrmask.ClipModel.attribute", device,
                                [model, x = std::move(x), text, opts, linear_bias] {
                                  return model->Attribute(x, text, opts, linear_bias);
                                });
  w->Keep(info.This().As<Napi::Object>());
  w->Queue();
  return w->Promise();
}

}  // namespace cxrmask
