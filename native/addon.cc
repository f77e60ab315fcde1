// Module init: the exported functions and classes of cxrmask_native.node.
//   diagnostics(), setThreads(n), getThreads(), ClipModel, Classifier
#include <ATen/Parallel.h>
#include <napi.h>

#include "diagnostics.h"
#include "js_objects.h"
#include "runtime.h"

namespace cxrmask {
namespace {

Napi::Value JsDiagnostics(const Napi::CallbackInfo& info) { return Diagnostics(info.Env()); }

Napi::Value JsSetThreads(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 1) {
    throw Napi::RangeError::New(info.Env(), "threads must be a positive integer");
  }
  SetRequestedThreads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value JsGetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  Napi::Function clip = DefineJsClip(env);
  Napi::Function classifier = DefineJsClassifier(env);
  data->clip_ctor = Napi::Persistent(clip);
  data->classifier_ctor = Napi::Persistent(classifier);
  env.SetInstanceData<AddonData>(data);  // deleted by N-API when the env goes away
  exports.Set("ClipModel", clip);
  exports.Set("Classifier", classifier);
  exports.Set("diagnostics", Napi::Function::New<JsDiagnostics>(env, "diagnostics"));
  exports.Set("setThreads", Napi::Function::New<JsSetThreads>(env, "setThreads"));
  exports.Set("getThreads", Napi::Function::New<JsGetThreads>(env, "getThreads"));
  return exports;
}

}  // namespace cxrmask

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return cxrmask::Init(env, exports);
}

NODE_API_MODULE(cxrmask_native, InitAddon)
