#include <memory>

#include "js_attribution.h"
#include "js_objects.h"
#include "runtime.h"
#include "workers.h"

namespace cxrmask {
namespace {

class JsClip : public Napi::ObjectWrap<JsClip> {
 public:
  explicit JsClip(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsClip>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw ArgTypeError(info.Env(), "use ClipModel.load(path, device)");
    }
    model_ = *info[0].As<Napi::External<std::shared_ptr<ClipModel>>>().Data();
  }

  static Napi::Value Load(const Napi::CallbackInfo& info) {
    auto* w =
        new LoadClipWorker(info.Env(), StringArg(info[0], "path"), StringArg(info[1], "device"));
    w->Queue();
    return w->Promise();
  }

  // encodeImage(x: Float32Array [n,3,S,S] | Uint8Array records [n,2,S,S], shape, bf16, pixels?)
  Napi::Value EncodeImage(const Napi::CallbackInfo& info) {
    auto model = Live(info.Env());
    auto shape = ShapeArg(info[1], "shape");
    ImageBatch x = ImageArg(info[0], shape, info[3]);
    if (!x.pixels && (shape.size() != 4 || shape[1] != 3)) {
      throw ArgRangeError(info.Env(), "image shape must be [n,3,S,S]");
    }
    auto* w = new EncodeImageWorker(info.Env(), model, std::move(x), info[2].ToBoolean().Value());
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }

  // encodeText(ids: BigInt64Array, shape: number[2])
  Napi::Value EncodeText(const Napi::CallbackInfo& info) {
    auto model = Live(info.Env());
    auto ids = InputCopy::From(info[0], napi_bigint64_array, "ids");
    auto shape = ShapeArg(info[1], "shape");
    if (shape.size() != 2) throw ArgRangeError(info.Env(), "token shape must be [n,L]");
    auto* w = new EncodeTextWorker(info.Env(), model, std::move(ids), std::move(shape));
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }

  // attribute(x, shape, pixels | undefined, options): js_attribution.cc
  Napi::Value Attribute(const Napi::CallbackInfo& info) {
    return QueueClipAttribution(info, Live(info.Env()));
  }

  // Drops this wrapper's reference; an op still running keeps the model alive until it ends.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Device(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), Live(info.Env())->device().str());
  }
  Napi::Value LogitScale(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), Live(info.Env())->logit_scale());
  }
  Napi::Value Bf16Supported(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), Live(info.Env())->bf16_supported());
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !model_);
  }

 private:
  std::shared_ptr<ClipModel> Live(Napi::Env env) const {
    if (!model_) throw Napi::Error::New(env, "ClipModel is disposed");
    return model_;
  }
  std::shared_ptr<ClipModel> model_;
};

}  // namespace

Napi::Function DefineJsClip(Napi::Env env) {
  return JsClip::DefineClass(env, "ClipModel",
                             {
                                 JsClip::StaticMethod<&JsClip::Load>("load"),
                                 JsClip::InstanceMethod<&JsClip::EncodeImage>("encodeImage"),
                                 JsClip::InstanceMethod<&JsClip::EncodeText>("encodeText"),
                                 JsClip::InstanceMethod<&JsClip::Attribute>("attribute"),
                                 JsClip::InstanceMethod<&JsClip::Dispose>("dispose"),
                                 JsClip::InstanceAccessor<&JsClip::Device>("device"),
                                 JsClip::InstanceAccessor<&JsClip::LogitScale>("logitScale"),
                                 JsClip::InstanceAccessor<&JsClip::Bf16Supported>("bf16Supported"),
                                 JsClip::InstanceAccessor<&JsClip::Disposed>("disposed"),
                             });
}

Napi::Object NewJsClip(Napi::Env env, std::shared_ptr<ClipModel> model) {
  auto* data = env.GetInstanceData<AddonData>();
  std::shared_ptr<ClipModel> holder = std::move(model);
  auto ext = Napi::External<std::shared_ptr<ClipModel>>::New(env, &holder);
  return data->clip_ctor.New({ext});
}

}  // namespace cxrmask
