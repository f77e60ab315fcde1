// TypedArray <-> at::Tensor without copies: inputs are viewed in place (the JS array is pinned by a
// reference until the worker finishes), outputs hand the tensor's own buffer to an ArrayBuffer.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

namespace cxrmask {

class PinnedInput {
 public:
  PinnedInput() = default;
  // Throws Napi::TypeError when `value` is not a TypedArray of `type`.
  static PinnedInput From(const Napi::Value& value, napi_typedarray_type type, const char* name);

  bool empty() const { return data_ == nullptr && length_ == 0 && ref_.IsEmpty(); }
  size_t length() const { return length_; }
  // A tensor over the JS memory (valid while this object lives). Only call off the JS thread
  // for reading; the data pointer was captured on the JS thread.
  at::Tensor View(at::IntArrayRef sizes) const;

 private:
  Napi::Reference<Napi::TypedArray> ref_;
  void* data_ = nullptr;
  size_t length_ = 0;
  at::ScalarType dtype_ = at::kFloat;
};

// A CPU float32 contiguous copy-free view of `t` as a Float32Array (t is converted first when it is
// on another device or dtype). The ArrayBuffer owns a heap reference to the tensor storage.
Napi::Float32Array ToFloat32Array(Napi::Env env, const at::Tensor& t);

// Checks for NaN/Inf; throws std::invalid_argument naming `what`.
void RequireFinite(const at::Tensor& t, const char* what);

}  // namespace cxrmask
