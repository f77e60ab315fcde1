// Reading JS arguments and option objects for every wrapper (declared in js_objects.h): shapes,
// strings, and option keys read strictly, with no default guessed on this side.
#include <cmath>
#include <string>
#include <vector>

#include "js_objects.h"

namespace cxrmask {

std::vector<int64_t> ShapeArg(const Napi::Value& v, const char* name) {
  if (!v.IsArray()) throw ArgTypeError(v.Env(), std::string(name) + " must be an array");
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsNumber() || e.As<Napi::Number>().Int64Value() <= 0 ||
        e.As<Napi::Number>().DoubleValue() !=
            static_cast<double>(e.As<Napi::Number>().Int64Value())) {
      throw ArgRangeError(v.Env(), std::string(name) + " must hold positive integers");
    }
    out.push_back(e.As<Napi::Number>().Int64Value());
  }
  return out;
}

Napi::Value RequiredKey(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) throw ArgTypeError(o.Env(), std::string("option '") + key + "' is missing");
  return v;
}

double NumberKey(const Napi::Object& o, const char* key) {
  Napi::Value v = RequiredKey(o, key);
  if (!v.IsNumber()) throw ArgTypeError(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t IntKey(const Napi::Object& o, const char* key, int64_t lo, int64_t hi) {
  const double v = NumberKey(o, key);
  // Checked as a double before the cast: a double outside int64's range (1e300, NaN) cast to
  // int64 is undefined behaviour, not an error.
  if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) || v != std::trunc(v)) {
    throw ArgRangeError(o.Env(), std::string(key) + " must be an integer in [" +
                                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return static_cast<int64_t>(v);
}

bool BoolKey(const Napi::Object& o, const char* key) {
  Napi::Value v = RequiredKey(o, key);
  if (!v.IsBoolean()) throw ArgTypeError(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string StringKey(const Napi::Object& o, const char* key) {
  return StringArg(RequiredKey(o, key), key);
}

std::optional<double> NullableNumberKey(const Napi::Object& o, const char* key) {
  if (RequiredKey(o, key).IsNull()) return std::nullopt;
  return NumberKey(o, key);
}

std::optional<std::string> NullableStringKey(const Napi::Object& o, const char* key) {
  Napi::Value v = RequiredKey(o, key);
  if (v.IsNull()) return std::nullopt;
  return StringArg(v, key);
}

bool BoolArg(const Napi::Value& v, const char* name) {
  if (!v.IsBoolean()) throw ArgTypeError(v.Env(), std::string(name) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string StringArg(const Napi::Value& v, const char* name) {
  if (!v.IsString()) throw ArgTypeError(v.Env(), std::string(name) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  // Paths and names go on as C strings, which end at a NUL: "a\0b.ckpt" would become "a".
  if (s.find('\0') != std::string::npos) {
    throw ArgTypeError(v.Env(), std::string(name) + " must not contain a NUL character");
  }
  return s;
}

}  // namespace cxrmask
