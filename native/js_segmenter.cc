// JS class Segmenter over the C++ core (segmenter.h) and its async workers. Validation and defaults
// live in ts/model/segmenter.ts; this re-checks types cheaply and queues one worker per call on the
// device's compute thread (PromiseWorker), like js_classifier.cc.
#include <cstring>
#include <memory>

#include "js_objects.h"
#include "segmenter.h"
#include "workers.h"

namespace cxrmask {
namespace {

Napi::Uint8Array ToUint8Array(Napi::Env env, const at::Tensor& t) {
  auto out = Napi::Uint8Array::New(env, static_cast<size_t>(t.numel()));
  if (t.numel() > 0) std::memcpy(out.Data(), t.data_ptr<uint8_t>(), t.numel());
  return out;
}

class CreateSegmenterWorker : public PromiseWorker {
 public:
  CreateSegmenterWorker(Napi::Env env, SegmenterOptions opts)
      : PromiseWorker(env, "cxrmask.Segmenter.create"), opts_(std::move(opts)) {}

 protected:
  void Run() override { model_ = Segmenter::Create(opts_); }
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return ResolveDevice(opts_.device).str(); }

 private:
  SegmenterOptions opts_;
  std::shared_ptr<Segmenter> model_;
};

class SegmentStepWorker : public PromiseWorker {
 public:
  SegmentStepWorker(Napi::Env env, std::shared_ptr<Segmenter> m, ImageBatch x, InputCopy bits)
      : PromiseWorker(env, "cxrmask.Segmenter.trainStep"),
        model_(std::move(m)),
        x_(std::move(x)),
        bits_(std::move(bits)) {}

 protected:
  void Run() override {
    std::optional<at::Tensor> bits;
    if (!bits_.empty()) {
      const int64_t s = x_.data.size(2);
      bits = bits_.View({x_.data.size(0), s, s});
    }
    result_ = model_->TrainStep(x_, bits);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", result_.loss);
    o.Set("dice", result_.dice);
    o.Set("gradNorm", result_.grad_norm);
    o.Set("step", static_cast<double>(result_.step));
    return o;
  }
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Segmenter> model_;
  ImageBatch x_;
  InputCopy bits_;
  SegmentStepResult result_;
};

// logits (float32 [n,3,S,S]) or masks (uint8 region bits [n,S,S]).
class SegmentWorker : public PromiseWorker {
 public:
  SegmentWorker(Napi::Env env, std::shared_ptr<Segmenter> m, ImageBatch x, double threshold,
                bool masks)
      : PromiseWorker(env, masks ? "cxrmask.Segmenter.predictMasks" : "cxrmask.Segmenter.logits"),
        model_(std::move(m)),
        x_(std::move(x)),
        threshold_(threshold),
        masks_(masks) {}

 protected:
  void Run() override { out_ = masks_ ? model_->Masks(x_, threshold_) : model_->Logits(x_); }
  Napi::Value Result(Napi::Env env) override {
    if (masks_) return ToUint8Array(env, out_);
    return ToFloat32Array(env, out_);
  }
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Segmenter> model_;
  ImageBatch x_;
  double threshold_;
  bool masks_;
  at::Tensor out_;
};

class SegmenterStateWorker : public PromiseWorker {
 public:
  SegmenterStateWorker(Napi::Env env, std::shared_ptr<Segmenter> m, std::string path, bool save,
                       bool weights_only)
      : PromiseWorker(env, save ? "cxrmask.Segmenter.save" : "cxrmask.Segmenter.load"),
        model_(std::move(m)),
        path_(std::move(path)),
        save_(save),
        weights_only_(weights_only) {}

 protected:
  void Run() override {
    if (save_) {
      model_->Save(path_, weights_only_);
    } else {
      model_->Load(path_);
    }
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Segmenter> model_;
  std::string path_;
  bool save_, weights_only_;
};

class JsSegmenter : public Napi::ObjectWrap<JsSegmenter> {
 public:
  explicit JsSegmenter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsSegmenter>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw ArgTypeError(info.Env(), "use Segmenter.create(options)");
    }
    model_ = *info[0].As<Napi::External<std::shared_ptr<Segmenter>>>().Data();
  }

  // create({ modelPath, device, lr, weightDecay, gradClip, bf16 })  -- validated and filled in TS
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    if (!info[0].IsObject()) throw ArgTypeError(info.Env(), "options must be an object");
    auto o = info[0].As<Napi::Object>();
    SegmenterOptions opts;
    opts.model_path = StringKey(o, "modelPath");
    opts.device = StringKey(o, "device");
    opts.lr = NumberKey(o, "lr");
    opts.weight_decay = NumberKey(o, "weightDecay");
    opts.grad_clip = NumberKey(o, "gradClip");
    opts.bf16 = BoolKey(o, "bf16");
    auto* w = new CreateSegmenterWorker(info.Env(), std::move(opts));
    w->Queue();
    return w->Promise();
  }

  // trainStep(x, shape, regionBits | null, pixels?)
  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    auto model = Live(info.Env());
    ImageBatch x = Images(info, info[3]);
    if (x.pixels && (x.pixels->variants() != 1 || !x.pixels->original)) {
      throw ArgRangeError(info.Env(), "trainStep takes the original variant of the records");
    }
    InputCopy bits;
    if (!info[2].IsUndefined() && !info[2].IsNull()) {
      bits = InputCopy::From(info[2], napi_uint8_array, "regionBits");
    } else if (!x.pixels) {
      throw ArgTypeError(info.Env(), "regionBits (Uint8Array [n,S,S]) is required for images");
    }
    auto* w = new SegmentStepWorker(info.Env(), model, std::move(x), std::move(bits));
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }

  // logits(x, shape, pixels?)
  Napi::Value Logits(const Napi::CallbackInfo& info) { return Segment(info, info[2], 0.5, false); }

  // predictMasks(x, shape, threshold, pixels?)
  Napi::Value PredictMasks(const Napi::CallbackInfo& info) {
    if (!info[2].IsNumber()) throw ArgTypeError(info.Env(), "threshold must be a number");
    const double t = info[2].As<Napi::Number>().DoubleValue();
    if (!(t > 0 && t < 1)) throw ArgRangeError(info.Env(), "threshold must be in (0, 1)");
    return Segment(info, info[3], t, true);
  }

  // save(path, weightsOnly?) / load(path)
  Napi::Value Save(const Napi::CallbackInfo& info) { return State(info, true); }
  Napi::Value Load(const Napi::CallbackInfo& info) { return State(info, false); }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    auto m = Live(info.Env());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("numParams", static_cast<double>(m->num_params()));
    o.Set("bf16Active", m->bf16_active());
    o.Set("device", m->device().str());
    o.Set("step", static_cast<double>(m->step()));
    return o;
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !model_);
  }

 private:
  ImageBatch Images(const Napi::CallbackInfo& info, const Napi::Value& pixels) {
    auto shape = ShapeArg(info[1], "shape");
    ImageBatch x = ImageArg(info[0], shape, pixels);
    if (!x.pixels && (shape.size() != 4 || shape[1] != 3)) {
      throw ArgRangeError(info.Env(), "image shape must be [n,3,S,S]");
    }
    return x;
  }
  Napi::Value Segment(const Napi::CallbackInfo& info, const Napi::Value& pixels, double threshold,
                      bool masks) {
    auto model = Live(info.Env());
    ImageBatch x = Images(info, pixels);
    if (x.pixels && x.pixels->variants() != 1) {
      throw ArgRangeError(info.Env(), "segment one variant of the records at a time");
    }
    auto* w = new SegmentWorker(info.Env(), model, std::move(x), threshold, masks);
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }
  Napi::Value State(const Napi::CallbackInfo& info, bool save) {
    auto model = Live(info.Env());
    auto* w = new SegmenterStateWorker(info.Env(), model, StringArg(info[0], "path"), save,
                                       info[1].ToBoolean().Value());
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }
  std::shared_ptr<Segmenter> Live(Napi::Env env) const {
    if (!model_) throw Napi::Error::New(env, "Segmenter is disposed");
    return model_;
  }
  std::shared_ptr<Segmenter> model_;
};

Napi::Value CreateSegmenterWorker::Result(Napi::Env env) {
  auto* data = env.GetInstanceData<AddonData>();
  std::shared_ptr<Segmenter> holder = model_;
  auto ext = Napi::External<std::shared_ptr<Segmenter>>::New(env, &holder);
  return data->segmenter_ctor.New({ext});
}

}  // namespace

Napi::Function DefineJsSegmenter(Napi::Env env) {
  return JsSegmenter::DefineClass(
      env, "Segmenter",
      {
          JsSegmenter::StaticMethod<&JsSegmenter::Create>("create"),
          JsSegmenter::InstanceMethod<&JsSegmenter::TrainStep>("trainStep"),
          JsSegmenter::InstanceMethod<&JsSegmenter::Logits>("logits"),
          JsSegmenter::InstanceMethod<&JsSegmenter::PredictMasks>("predictMasks"),
          JsSegmenter::InstanceMethod<&JsSegmenter::Save>("save"),
          JsSegmenter::InstanceMethod<&JsSegmenter::Load>("load"),
          JsSegmenter::InstanceMethod<&JsSegmenter::Dispose>("dispose"),
          JsSegmenter::InstanceMethod<&JsSegmenter::Info>("info"),
          JsSegmenter::InstanceAccessor<&JsSegmenter::Disposed>("disposed"),
      });
}

}  // namespace cxrmask
