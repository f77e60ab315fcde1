#include "tensor_bridge.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

#include "host_buffers.h"
#include "js_objects.h"

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

namespace {
// What a held value holds; type tags tell a held value from any other External.
struct HeldImages {
  ImageBatch batch;
  int64_t copied_bytes = 0;
};
struct HeldArray {
  InputCopy copy;
  int64_t copied_bytes = 0;
};
constexpr napi_type_tag kHeldImagesTag = {0x63786d61736b4849ULL, 0x6d61676573303031ULL};
constexpr napi_type_tag kHeldArrayTag = {0x63786d61736b4841ULL, 0x7272617930303031ULL};

template <typename T>
T* HeldOf(const Napi::Value& v, const napi_type_tag& tag) {
  if (!v.IsExternal()) return nullptr;
  auto ext = v.As<Napi::External<T>>();
  return ext.CheckTypeTag(&tag) ? ext.Data() : nullptr;
}

// The copy's bytes are reported to V8 so that held values are collected at the pace they use
// memory.
template <typename T>
Napi::Value NewHeld(Napi::Env env, T* held, const napi_type_tag& tag) {
  Napi::MemoryManagement::AdjustExternalMemory(env, held->copied_bytes);
  auto ext = Napi::External<T>::New(env, held, [](Napi::Env env, T* h) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -h->copied_bytes);
    delete h;
  });
  ext.TypeTag(&tag);
  return ext;
}

at::ScalarType TorchType(napi_typedarray_type t) {
  switch (t) {
    case napi_bigint64_array:
      return at::kLong;
    case napi_uint8_array:
      return at::kByte;
    default:
      return at::kFloat;
  }
}
}  // namespace

InputCopy InputCopy::From(const Napi::Value& value, napi_typedarray_type type, const char* name) {
  Napi::Env env = value.Env();
  if (const HeldArray* held = HeldOf<HeldArray>(value, kHeldArrayTag)) {
    if (held->copy.empty() || held->copy.dtype() != TorchType(type)) {
      throw ArgTypeError(env, std::string(name) + " must be a " + TypeName(type));
    }
    return held->copy;
  }
  if (!value.IsTypedArray()) {
    throw ArgTypeError(env, std::string(name) + " must be a " + TypeName(type));
  }
  auto arr = value.As<Napi::TypedArray>();
  if (arr.TypedArrayType() != type) {
    throw ArgTypeError(env, std::string(name) + " must be a " + TypeName(type) + ", got " +
                                TypeName(arr.TypedArrayType()));
  }
  napi_typedarray_type t;
  size_t len = 0;
  void* data = nullptr;
  napi_status s = napi_get_typedarray_info(env, arr, &t, &len, &data, nullptr, nullptr);
  NAPI_THROW_IF_FAILED(env, s, InputCopy());
  InputCopy in;
  // A view of an addon-owned host buffer is borrowed (kept alive by reference), anything else
  // copied.
  if (auto lent = BorrowHostBuffer(data, static_cast<int64_t>(len), TorchType(type))) {
    in.t_ = *lent;
    in.borrowed_ = true;
    return in;
  }
  in.t_ = NewHostTensor(static_cast<int64_t>(len), TorchType(type));
  if (len > 0) std::memcpy(in.t_.data_ptr(), data, in.t_.nbytes());
  return in;
}

InputCopy InputCopy::FromImages(const Napi::Value& value, const char* name) {
  if (const HeldArray* held = HeldOf<HeldArray>(value, kHeldArrayTag)) {
    if (!held->copy.empty() && held->copy.dtype() == at::kByte) {
      return From(value, napi_uint8_array, name);
    }
    return From(value, napi_float32_array, name);
  }
  if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    return From(value, napi_uint8_array, name);
  }
  return From(value, napi_float32_array, name);
}

at::Tensor InputCopy::View(at::IntArrayRef sizes) const {
  int64_t n = 1;
  for (auto s : sizes) n *= s;
  if (static_cast<size_t>(n) != length()) {
    throw std::invalid_argument("input has " + std::to_string(length()) + " elements, expected " +
                                std::to_string(n));
  }
  return t_.view(sizes);
}

namespace {
std::array<double, 3> Triple(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 3) {
    throw ArgTypeError(o.Env(), std::string("pixels.") + key + " must be 3 numbers");
  }
  std::array<double, 3> out{};
  for (uint32_t c = 0; c < 3; ++c) {
    Napi::Value e = v.As<Napi::Array>().Get(c);
    if (!e.IsNumber()) {
      throw ArgTypeError(o.Env(), std::string("pixels.") + key + " must be 3 numbers");
    }
    out[c] = e.As<Napi::Number>().DoubleValue();
  }
  return out;
}
}  // namespace

ImageBatch ImageArg(const Napi::Value& x, std::vector<int64_t> shape, const Napi::Value& pixels) {
  Napi::Env env = x.Env();
  if (const HeldImages* held = HeldOf<HeldImages>(x, kHeldImagesTag)) {
    if (!held->batch.data.sizes().equals(shape)) {
      throw ArgRangeError(env, "x: the held batch has another shape");
    }
    ImageBatch batch = held->batch;
    batch.fence = std::make_shared<CopyFence>();  // one per op
    return batch;
  }
  ImageBatch batch;
  InputCopy data = InputCopy::FromImages(x, "x");
  if (data.dtype() != at::kByte) {
    if (!pixels.IsUndefined() && !pixels.IsNull()) {
      throw ArgTypeError(env, "pixels apply to Uint8Array cache records only");
    }
    try {
      batch.data = data.View(shape);
    } catch (const std::invalid_argument& e) {
      throw ArgRangeError(env, e.what());
    }
    return batch;
  }
  if (shape.size() != 4 || shape[1] != 2 || shape[2] != shape[3]) {
    throw ArgRangeError(env, "record shape must be [n,2,S,S]");
  }
  if (!pixels.IsObject()) throw ArgTypeError(env, "records need a pixels spec");
  auto o = pixels.As<Napi::Object>();
  PixelSpec spec;
  spec.mean = Triple(o, "mean");
  spec.std = Triple(o, "std");
  spec.original = BoolKey(o, "original");
  spec.masked = BoolKey(o, "masked");
  Napi::Value paint = o.Get("paint");
  if (!paint.IsTypedArray() ||
      paint.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      paint.As<Napi::Float32Array>().ElementLength() != 24) {
    throw ArgTypeError(env, "pixels.paint must be a Float32Array(24)");
  }
  auto table = paint.As<Napi::Float32Array>();
  for (size_t i = 0; i < 24; ++i) spec.paint[i] = table[i];
  try {
    batch.data = data.View(shape);
  } catch (const std::invalid_argument& e) {
    throw ArgRangeError(env, e.what());
  }
  batch.pixels = spec;
  return batch;
}

Napi::Value HoldImages(const Napi::CallbackInfo& info) {
  auto* held = new HeldImages();
  try {
    held->batch = ImageArg(info[0], ShapeArg(info[1], "shape"), info[2]);
  } catch (...) {
    delete held;
    throw;
  }
  if (!BorrowHostBuffer(held->batch.data.data_ptr(), held->batch.data.numel(),
                        held->batch.data.scalar_type())) {
    held->copied_bytes = static_cast<int64_t>(held->batch.data.nbytes());
  }
  return NewHeld(info.Env(), held, kHeldImagesTag);
}

Napi::Value HoldArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "input";
  napi_typedarray_type type = napi_float32_array;
  if (info[0].IsTypedArray()) type = info[0].As<Napi::TypedArray>().TypedArrayType();
  if (type != napi_float32_array && type != napi_uint8_array && type != napi_bigint64_array) {
    throw ArgTypeError(env, name + " must be a Float32Array, Uint8Array or BigInt64Array");
  }
  auto* held = new HeldArray();
  try {
    held->copy = InputCopy::From(info[0], type, name.c_str());
  } catch (...) {
    delete held;
    throw;
  }
  if (!held->copy.borrowed()) {
    held->copied_bytes =
        static_cast<int64_t>(held->copy.length() * c10::elementSize(held->copy.dtype()));
  }
  return NewHeld(env, held, kHeldArrayTag);
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

namespace {
// True when no value of a contiguous CPU float32 tensor is NaN or Inf: one pass over the bits
// (exponent all ones), the largest magnitude below Inf's. isfinite(t).all() runs four kernels and
// was ~0.8 ms of every 224² image the models took on one core, more than the check is worth.
bool AllFiniteFloat32(const at::Tensor& t) {
  const auto* bits = static_cast<const uint32_t*>(t.const_data_ptr());
  const int64_t n = t.numel();
  uint32_t top = 0;
  for (int64_t i = 0; i < n; ++i) top = std::max(top, bits[i] & 0x7fffffffu);
  return top < 0x7f800000u;
}
}  // namespace

void RequireFinite(const at::Tensor& t, const char* what) {
  if (!t.is_floating_point()) return;
  const bool finite = t.is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous()
                          ? AllFiniteFloat32(t)
                          : at::isfinite(t).all().item<bool>();
  if (!finite) throw std::invalid_argument(std::string(what) + " contains NaN or Inf");
}

void RequireUnitInterval(const at::Tensor& t, const char* what) {
  const auto flat = t.reshape({-1});
  const auto outside = flat.lt(0).logical_or(flat.gt(1));
  if (!outside.any().item<bool>()) return;
  const int64_t i = outside.nonzero()[0][0].item<int64_t>();
  std::ostringstream m;
  m << what << " must be in [0, 1] (0/1, or soft labels between), got " << flat[i].item<float>()
    << " at index " << i;
  throw std::invalid_argument(m.str());
}

}  // namespace cxrmask
