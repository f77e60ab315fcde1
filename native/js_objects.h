// The JS classes over the C++ cores: ClipModel and Classifier (Napi::ObjectWrap), plus the
// per-env data holding their constructors. Validation and defaults live in TypeScript
// (ts/model/defaults.ts); these read option objects strictly, re-check types cheaply and queue
// one worker per call.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "classifier.h"
#include "clip_model.h"

namespace cxrmask {

struct AddonData {
  Napi::FunctionReference clip_ctor;
  Napi::FunctionReference classifier_ctor;
  Napi::FunctionReference segmenter_ctor;  // js_segmenter.cc
  // ts/common/errors.ts NativeError, handed over by loadNative() (setErrorClass): rejections are
  // instanceof it. Empty until then, and plain Errors are used.
  Napi::FunctionReference error_ctor;
};

// Bounds of the integers read with IntKey: sizes and counts within int32 (far above any real
// model), seeds within the doubles that are exact integers (what TS's safe-integer check allows).
constexpr int64_t kMaxCount = 2147483647;
constexpr int64_t kMaxSeed = 9007199254740991;

// Argument errors thrown synchronously keep their JS type and carry code 'ERR_INVALID_ARG', as
// Node's own argument checks do, so callers can branch on the code whatever the class.
template <typename E>
E InvalidArg(Napi::Env env, const std::string& message) {
  E e = E::New(env, message);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG"));
  return e;
}
inline Napi::TypeError ArgTypeError(Napi::Env env, const std::string& message) {
  return InvalidArg<Napi::TypeError>(env, message);
}
inline Napi::RangeError ArgRangeError(Napi::Env env, const std::string& message) {
  return InvalidArg<Napi::RangeError>(env, message);
}

Napi::Function DefineJsClip(Napi::Env env);
Napi::Function DefineJsClassifier(Napi::Env env);
Napi::Function DefineJsSegmenter(Napi::Env env);

Napi::Object NewJsClip(Napi::Env env, std::shared_ptr<ClipModel> model);
Napi::Object NewJsClassifier(Napi::Env env, std::shared_ptr<Classifier> model);

// Helpers shared by the wrappers.
std::vector<int64_t> ShapeArg(const Napi::Value& v, const char* name);
// A string without NUL characters (TypeError naming `name` otherwise).
std::string StringArg(const Napi::Value& v, const char* name);
bool BoolArg(const Napi::Value& v, const char* name);
// Keys of an option object, read strictly: the TypeScript layer passes every key, so a missing
// one (absent or undefined) is a TypeError naming it, and no default is guessed here. The
// Nullable readers take null as "none"; the others refuse it.
Napi::Value RequiredKey(const Napi::Object& o, const char* key);
double NumberKey(const Napi::Object& o, const char* key);
// An integer in [lo, hi], range-checked before the cast to int64 (RangeError naming the key).
int64_t IntKey(const Napi::Object& o, const char* key, int64_t lo, int64_t hi);
bool BoolKey(const Napi::Object& o, const char* key);
std::string StringKey(const Napi::Object& o, const char* key);
std::optional<double> NullableNumberKey(const Napi::Object& o, const char* key);
std::optional<std::string> NullableStringKey(const Napi::Object& o, const char* key);

}  // namespace cxrmask
