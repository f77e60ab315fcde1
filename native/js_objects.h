// The JS classes over the C++ cores: ClipModel and Classifier (Napi::ObjectWrap), plus the
// per-env data holding their constructors. Validation and defaults live in TypeScript; these
// re-check types cheaply and queue one worker per call.
#pragma once

#include <napi.h>

#include <memory>

#include "classifier.h"
#include "clip_model.h"

namespace cxrmask {

struct AddonData {
  Napi::FunctionReference clip_ctor;
  Napi::FunctionReference classifier_ctor;
};

Napi::Function DefineJsClip(Napi::Env env);
Napi::Function DefineJsClassifier(Napi::Env env);

Napi::Object NewJsClip(Napi::Env env, std::shared_ptr<ClipModel> model);
Napi::Object NewJsClassifier(Napi::Env env, std::shared_ptr<Classifier> model);

// Helpers shared by the wrappers.
std::vector<int64_t> ShapeArg(const Napi::Value& v, const char* name);
std::string StringArg(const Napi::Value& v, const char* name);

}  // namespace cxrmask
