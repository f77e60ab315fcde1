#include <memory>

#include "js_attribution.h"
#include "js_distributed.h"
#include "js_objects.h"
#include "workers.h"

namespace cxrmask {
namespace {

// headWeights(): { weight: Float32Array [numLabels*inputDim], bias: Float32Array [numLabels] }.
class HeadWeightsWorker : public PromiseWorker {
 public:
  HeadWeightsWorker(Napi::Env env, std::shared_ptr<Classifier> m)
      : PromiseWorker(env, "cxrmask.Classifier.headWeights"), model_(std::move(m)) {}

 protected:
  void Run() override { weights_ = model_->HeadWeights(); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("weight", ToFloat32Array(env, weights_.first));
    o.Set("bias", ToFloat32Array(env, weights_.second));
    return o;
  }
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Classifier> model_;
  std::pair<at::Tensor, at::Tensor> weights_;
};

// Classifier.readHeader(path): what a checkpoint says about itself (Classifier::ReadHeader).
class ReadHeaderWorker : public PromiseWorker {
 public:
  ReadHeaderWorker(Napi::Env env, std::string path)
      : PromiseWorker(env, "cxrmask.Classifier.readHeader"), path_(std::move(path)) {}

 protected:
  void Run() override { header_ = Classifier::ReadHeader(path_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("format", static_cast<double>(header_.format));
    o.Set("kind", header_.kind);
    o.Set("kindRecorded", header_.kind_recorded);
    o.Set("headOnly", header_.head_only);
    o.Set("freezeEncoder", header_.freeze_encoder);
    o.Set("weightsOnly", header_.weights_only);
    o.Set("inputDim", static_cast<double>(header_.input_dim));
    o.Set("numLabels", static_cast<double>(header_.num_labels));
    o.Set("step", static_cast<double>(header_.step));
    return o;
  }

 private:
  std::string path_;
  ClassifierCheckpointHeader header_;
};

class JsClassifier : public Napi::ObjectWrap<JsClassifier> {
 public:
  explicit JsClassifier(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsClassifier>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw ArgTypeError(info.Env(), "use Classifier.create(options)");
    }
    model_ = *info[0].As<Napi::External<std::shared_ptr<Classifier>>>().Data();
  }

  // create({ modelPath | null, inputDim, numLabels, device, lrEncoder, lrHead, weightDecay,
  //          freezeEncoder, gradClip, bf16, seed, imageSize })  -- validated and filled in TS
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    if (!info[0].IsObject()) throw ArgTypeError(info.Env(), "options must be an object");
    auto o = info[0].As<Napi::Object>();
    ClassifierOptions opts;
    opts.model_path = NullableStringKey(o, "modelPath").value_or("");
    opts.input_dim = IntKey(o, "inputDim", 0, kMaxCount);
    opts.num_labels = IntKey(o, "numLabels", 1, kMaxCount);
    opts.device = StringKey(o, "device");
    opts.lr_encoder = NumberKey(o, "lrEncoder");
    opts.lr_head = NumberKey(o, "lrHead");
    opts.weight_decay = NumberKey(o, "weightDecay");
    opts.freeze_encoder = BoolKey(o, "freezeEncoder");
    opts.grad_clip = NumberKey(o, "gradClip");
    opts.bf16 = BoolKey(o, "bf16");
    opts.seed = IntKey(o, "seed", 0, kMaxSeed);
    opts.image_size = IntKey(o, "imageSize", 0, kMaxCount);
    auto* w = new CreateClassifierWorker(info.Env(), std::move(opts));
    w->Queue();
    return w->Promise();
  }

  // readHeader(path)
  static Napi::Value ReadHeader(const Napi::CallbackInfo& info) {
    auto* w = new ReadHeaderWorker(info.Env(), StringArg(info[0], "path"));
    w->Queue();
    return w->Promise();
  }

  Napi::Value HeadWeights(const Napi::CallbackInfo& info) {
    auto* w = new HeadWeightsWorker(info.Env(), Live(info.Env()));
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }

  // trainStep(x, shape, labels, mask | null, pixels | undefined, readLoss)
  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    auto model = Live(info.Env());
    ImageBatch x = ImageArg(info[0], ShapeArg(info[1], "shape"), info[4]);
    if (x.pixels && x.pixels->variants() != 1) {
      throw ArgRangeError(info.Env(), "trainStep takes one variant of the records");
    }
    auto labels = InputCopy::From(info[2], napi_float32_array, "labels");
    InputCopy mask;
    if (!info[3].IsUndefined() && !info[3].IsNull()) {
      mask = InputCopy::From(info[3], napi_float32_array, "labelMask");
    }
    const bool read_loss = BoolArg(info[5], "readLoss");
    auto* w = new TrainStepWorker(info.Env(), model, std::move(x), std::move(labels),
                                  std::move(mask), read_loss);
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }

  // readLosses(): what steps run with readLoss false left on the device (one device sync).
  Napi::Value ReadLosses(const Napi::CallbackInfo& info) {
    auto* w = new ReadLossesWorker(info.Env(), Live(info.Env()));
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }

  Napi::Value Predict(const Napi::CallbackInfo& info) {
    return Infer(info, InferWorker::Kind::kPredict);
  }
  Napi::Value Embed(const Napi::CallbackInfo& info) {
    return Infer(info, InferWorker::Kind::kEmbed);
  }
  // save(path, weightsOnly?)
  Napi::Value Save(const Napi::CallbackInfo& info) { return State(info, StateWorker::Kind::kSave); }
  Napi::Value Load(const Napi::CallbackInfo& info) { return State(info, StateWorker::Kind::kLoad); }

  // attachGroup(group | null): data-parallel training over a ProcessGroup (js_distributed.cc).
  Napi::Value AttachGroup(const Napi::CallbackInfo& info) {
    return AttachGroupToClassifier(info.Env(), Live(info.Env()), info[0],
                                   info.This().As<Napi::Object>());
  }
  Napi::Value IdleStep(const Napi::CallbackInfo& info) {
    const bool read_loss = BoolArg(info[0], "readLoss");
    return IdleStepOnClassifier(info.Env(), Live(info.Env()), info.This().As<Napi::Object>(),
                                read_loss);
  }

  // attribute(x, shape, pixels | undefined, options): js_attribution.cc
  Napi::Value Attribute(const Napi::CallbackInfo& info) {
    return QueueClassifierAttribution(info, Live(info.Env()));
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    auto m = Live(info.Env());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("inputDim", static_cast<double>(m->input_dim()));
    o.Set("numLabels", static_cast<double>(m->num_labels()));
    o.Set("headOnly", m->head_only());
    o.Set("bf16Active", m->bf16_active());
    o.Set("device", m->device().str());
    o.Set("step", static_cast<double>(m->step()));
    return o;
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !model_);
  }

 private:
  Napi::Value Infer(const Napi::CallbackInfo& info, InferWorker::Kind kind) {
    auto model = Live(info.Env());
    ImageBatch x = ImageArg(info[0], ShapeArg(info[1], "shape"), info[2]);
    auto* w = new InferWorker(info.Env(), model, std::move(x), kind);
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }
  Napi::Value State(const Napi::CallbackInfo& info, StateWorker::Kind kind) {
    auto model = Live(info.Env());
    auto* w = new StateWorker(info.Env(), model, StringArg(info[0], "path"), kind,
                              info[1].ToBoolean().Value());
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }
  std::shared_ptr<Classifier> Live(Napi::Env env) const {
    if (!model_) throw Napi::Error::New(env, "Classifier is disposed");
    return model_;
  }
  std::shared_ptr<Classifier> model_;
};

}  // namespace

Napi::Function DefineJsClassifier(Napi::Env env) {
  return JsClassifier::DefineClass(
      env, "Classifier",
      {
          JsClassifier::StaticMethod<&JsClassifier::Create>("create"),
          JsClassifier::StaticMethod<&JsClassifier::ReadHeader>("readHeader"),
          JsClassifier::InstanceMethod<&JsClassifier::HeadWeights>("headWeights"),
          JsClassifier::InstanceMethod<&JsClassifier::TrainStep>("trainStep"),
          JsClassifier::InstanceMethod<&JsClassifier::ReadLosses>("readLosses"),
          JsClassifier::InstanceMethod<&JsClassifier::Predict>("predict"),
          JsClassifier::InstanceMethod<&JsClassifier::Embed>("embed"),
          JsClassifier::InstanceMethod<&JsClassifier::Save>("save"),
          JsClassifier::InstanceMethod<&JsClassifier::Load>("load"),
          JsClassifier::InstanceMethod<&JsClassifier::AttachGroup>("attachGroup"),
          JsClassifier::InstanceMethod<&JsClassifier::IdleStep>("idleStep"),
          JsClassifier::InstanceMethod<&JsClassifier::Attribute>("attribute"),
          JsClassifier::InstanceMethod<&JsClassifier::Dispose>("dispose"),
          JsClassifier::InstanceMethod<&JsClassifier::Info>("info"),
          JsClassifier::InstanceAccessor<&JsClassifier::Disposed>("disposed"),
      });
}

Napi::Object NewJsClassifier(Napi::Env env, std::shared_ptr<Classifier> model) {
  auto* data = env.GetInstanceData<AddonData>();
  std::shared_ptr<Classifier> holder = std::move(model);
  auto ext = Napi::External<std::shared_ptr<Classifier>>::New(env, &holder);
  return data->classifier_ctor.New({ext});
}

}  // namespace cxrmask
