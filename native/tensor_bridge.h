// TypedArray <-> at::Tensor. Inputs are taken synchronously when the JS call is made: copied on the
// JS thread (into pinned memory when a GPU is present), so a worker never reads JS memory and
// nothing JS does afterwards (reuse, transfer, GC) changes or reaches the op — except views of
// addon-owned host buffers (host_buffers.h), which are borrowed by reference, not copied: JS must
// not write into those until the op has settled. The TypeScript layer queues ops per model, so it
// takes the inputs with holdImages/holdArray at the call and hands the held value to the queued op.
// Outputs hand the tensor's own buffer to an ArrayBuffer without a copy.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include "pixels.h"

namespace cxrmask {

class InputCopy {
 public:
  InputCopy() = default;
  // Throws Napi::TypeError when `value` is not a TypedArray of `type`.
  static InputCopy From(const Napi::Value& value, napi_typedarray_type type, const char* name);
  // Float32Array (images / features) or Uint8Array (cache records).
  static InputCopy FromImages(const Napi::Value& value, const char* name);
  // A held value (holdArray) is accepted wherever a TypedArray of its type is.

  bool empty() const { return !t_.defined(); }
  size_t length() const { return t_.defined() ? static_cast<size_t>(t_.numel()) : 0; }
  at::ScalarType dtype() const { return t_.scalar_type(); }
  // The copy with `sizes`; throws std::invalid_argument when the element count differs.
  at::Tensor View(at::IntArrayRef sizes) const;
  // True when the memory is a borrowed host buffer (no copy was made).
  bool borrowed() const { return borrowed_; }

 private:
  at::Tensor t_;
  bool borrowed_ = false;
};

// An image-op input from JS: x (Float32Array [n,3,S,S] / [n,D], or Uint8Array cache records
// [n,2,S,S]), its shape, and for records the paint spec
// { mean: number[3], std: number[3], paint: Float32Array(24), original: bool, masked: bool }.
// Throws Napi errors naming the argument. `x` may also be a held batch (holdImages).
ImageBatch ImageArg(const Napi::Value& x, std::vector<int64_t> shape, const Napi::Value& pixels);

// holdImages(x, shape, pixels?) and holdArray(typedArray): the input taken now (as ImageArg /
// InputCopy::From would), as an opaque value a later op call accepts in place of the array.
Napi::Value HoldImages(const Napi::CallbackInfo& info);
Napi::Value HoldArray(const Napi::CallbackInfo& info);

// A CPU float32 contiguous copy-free view of `t` as a Float32Array (t is converted first when it is
// on another device or dtype). The ArrayBuffer owns a heap reference to the tensor storage.
Napi::Float32Array ToFloat32Array(Napi::Env env, const at::Tensor& t);

// Checks for NaN/Inf; throws std::invalid_argument naming `what`.
void RequireFinite(const at::Tensor& t, const char* what);

// Checks that every value is in [0, 1] (after RequireFinite); throws std::invalid_argument naming
// `what`, the first value outside and its index.
void RequireUnitInterval(const at::Tensor& t, const char* what);

}  // namespace cxrmask
