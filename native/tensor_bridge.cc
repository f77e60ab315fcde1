#include "tensor_bridge.h"

#include <stdexcept>
#include <string>

namespace cxrmask {
namespace {
const char* TypeName(napi_typedarray_type t) {
  switch (t) {
    case napi_float32_array:
      return "Float32Array";
    case napi_bigint64_array:
      return "BigInt64Array";
    case napi_float64_array:
      return "Float64Array";
    case napi_int32_array:
      return "Int32Array";
    case napi_uint8_array:
      return "Uint8Array";
    default:
      return "another TypedArray";
  }
}
}  // namespace

PinnedInput PinnedInput::From(const Napi::Value& value, napi_typedarray_type type,
                              const char* name) {
  Napi::Env env = value.Env();
  if (!value.IsTypedArray()) {
    throw Napi::TypeError::New(env, std::string(name) + " must be a " + TypeName(type));
  }
  auto arr = value.As<Napi::TypedArray>();
  if (arr.TypedArrayType() != type) {
    throw Napi::TypeError::New(env, std::string(name) + " must be a " + TypeName(type) + ", got " +
                                        TypeName(arr.TypedArrayType()));
  }
  PinnedInput in;
  napi_typedarray_type t;
  size_t len = 0;
  void* data = nullptr;
  napi_status s = napi_get_typedarray_info(env, arr, &t, &len, &data, nullptr, nullptr);
  NAPI_THROW_IF_FAILED(env, s, PinnedInput());
  in.ref_ = Napi::Persistent(arr);
  in.data_ = data;
  in.length_ = len;
  in.dtype_ = type == napi_bigint64_array ? at::kLong : at::kFloat;
  return in;
}

at::Tensor PinnedInput::View(at::IntArrayRef sizes) const {
  int64_t n = 1;
  for (auto s : sizes) n *= s;
  if (static_cast<size_t>(n) != length_) {
    throw std::invalid_argument("input has " + std::to_string(length_) + " elements, expected " +
                                std::to_string(n));
  }
  return at::from_blob(data_, sizes, at::TensorOptions().dtype(dtype_));
}

Napi::Float32Array ToFloat32Array(Napi::Env env, const at::Tensor& t) {
  auto* owned = new at::Tensor(t.to(at::kCPU, at::kFloat).contiguous());
  const size_t bytes = owned->numel() * sizeof(float);
  if (bytes == 0) {
    delete owned;
    return Napi::Float32Array::New(env, 0);
  }
  auto buf = Napi::ArrayBuffer::New(
      env, owned->data_ptr<float>(), bytes,
      [](Napi::Env env, void*, at::Tensor* hint) {
        Napi::MemoryManagement::AdjustExternalMemory(
            env, -static_cast<int64_t>(hint->numel() * sizeof(float)));
        delete hint;
      },
      owned);
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(bytes));
  return Napi::Float32Array::New(env, owned->numel(), buf, 0);
}

void RequireFinite(const at::Tensor& t, const char* what) {
  if (t.is_floating_point() && !at::isfinite(t).all().item<bool>()) {
    throw std::invalid_argument(std::string(what) + " contains NaN or Inf");
  }
}

}  // namespace cxrmask
