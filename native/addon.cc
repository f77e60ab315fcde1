// Module init: the exported functions and classes of cxrmask_native.node.
//   diagnostics(), setThreads(n), getThreads(), setGraphOptimize(on), setTf32(on),
//   setErrorClass(ctor), recordsToImages(...), allocHostBuffer(bytes), holdImages(...),
//   holdArray(...), gray16To8(samples, sbit),
//   dicomCodes / dicomApplyLut(cells, shift, mask[, lut]), ClipModel, Classifier, Segmenter,
//   ProcessGroup
#include <ATen/Parallel.h>
#include <napi.h>

#include <cstring>

#include "diagnostics.h"
#include "host_buffers.h"
#include "js_distributed.h"
#include "js_objects.h"
#include "runtime.h"
#include "workers.h"

namespace cxrmask {
namespace {

Napi::Value JsDiagnostics(const Napi::CallbackInfo& info) { return Diagnostics(info.Env()); }

Napi::Value JsSetThreads(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 1) {
    throw ArgRangeError(info.Env(), "threads must be a positive integer");
  }
  SetRequestedThreads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// setGraphOptimize(true | false | 'auto')
Napi::Value JsSetGraphOptimize(const Napi::CallbackInfo& info) {
  if (info[0].IsBoolean()) {
    SetGraphOptimize(info[0].As<Napi::Boolean>().Value() ? GraphOptimizeMode::kOn
                                                         : GraphOptimizeMode::kOff);
  } else if (info[0].IsString() && info[0].As<Napi::String>().Utf8Value() == "auto") {
    SetGraphOptimize(GraphOptimizeMode::kAuto);
  } else {
    throw ArgTypeError(info.Env(), "mode must be true, false or 'auto'");
  }
  return info.Env().Undefined();
}

// setTf32(enabled: boolean)
Napi::Value JsSetTf32(const Napi::CallbackInfo& info) {
  if (!info[0].IsBoolean()) throw ArgTypeError(info.Env(), "enabled must be a boolean");
  SetTf32(info[0].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}

// recordsToImages(records: Uint8Array, shape: [n,2,S,S], pixels, device)
Napi::Value JsRecordsToImages(const Napi::CallbackInfo& info) {
  ImageBatch x = ImageArg(info[0], ShapeArg(info[1], "shape"), info[2]);
  if (!x.pixels) throw ArgTypeError(info.Env(), "records must be a Uint8Array");
  auto* w = new RecordsWorker(info.Env(), std::move(x), StringArg(info[3], "device"));
  w->Queue();
  return w->Promise();
}

// allocHostBuffer(bytes): an ArrayBuffer over addon-owned (pinned when a GPU is present) memory.
Napi::Value JsAllocHostBuffer(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0 ||
      info[0].As<Napi::Number>().DoubleValue() > 1e12) {
    throw ArgRangeError(info.Env(), "bytes must be a number between 0 and 1e12");
  }
  return NewHostBuffer(info.Env(), static_cast<size_t>(info[0].As<Napi::Number>().Int64Value()));
}

// setErrorClass(NativeError): the class worker rejections are made with (ts/native.ts, at load).
Napi::Value JsSetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw ArgTypeError(info.Env(), "error class must be a constructor");
  info.Env().GetInstanceData<AddonData>()->error_ctor =
      Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// gray16To8(samples: Uint16Array, sbit: number | null) → Promise<{ bits, gray: Buffer }>
Napi::Value JsGray16To8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
    throw ArgTypeError(env, "samples must be a Uint16Array");
  }
  int sbit = 0;
  if (!info[1].IsNull()) {
    const double s = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
    if (!(s >= 1 && s <= 16) || s != static_cast<int>(s)) {
      throw ArgRangeError(env, "sbit must be an integer from 1 to 16, or null");
    }
    sbit = static_cast<int>(s);
  }
  auto samples = info[0].As<Napi::Uint16Array>();
  auto gray = Napi::Buffer<uint8_t>::New(env, samples.ElementLength());
  auto* w = new Gray16Worker(env, samples.Data(), samples.ElementLength(), sbit, gray);
  // Keeps the array object alive, not its memory: the caller must not transfer, detach or
  // write `samples` until the promise settles (the pool thread reads it in place; the one
  // caller, ts/images/source.ts, passes sharp's private output).
  w->Keep(samples);
  w->Queue();
  return w->Promise();
}

// The cells, shift and mask of dicomCodes / dicomApplyLut, checked.
struct DicomCells {
  Napi::TypedArray cells;
  int shift;
  uint32_t mask;
};
DicomCells DicomArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw ArgTypeError(env, "cells must be a typed array");
  auto cells = info[0].As<Napi::TypedArray>();
  const auto type = cells.TypedArrayType();
  if (type != napi_uint8_array && type != napi_int8_array && type != napi_uint16_array &&
      type != napi_int16_array) {
    throw ArgTypeError(env, "cells must be a Uint8Array, Int8Array, Uint16Array or Int16Array");
  }
  const double shift = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (!(shift >= 0 && shift <= 15) || shift != static_cast<int>(shift)) {
    throw ArgRangeError(env, "shift must be an integer from 0 to 15");
  }
  const double mask = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : -1;
  // 2^bits - 1 for bits 1..16
  if (!(mask >= 1 && mask <= 65535) || mask != static_cast<uint32_t>(mask) ||
      ((static_cast<uint32_t>(mask) + 1) & static_cast<uint32_t>(mask)) != 0) {
    throw ArgRangeError(env, "mask must be 2^bits - 1 for bits from 1 to 16");
  }
  return {cells, static_cast<int>(shift), static_cast<uint32_t>(mask)};
}

// dicomCodes(cells, shift, mask) → Promise<Buffer>: byte `code` is 1 where a cell has that code.
// As gray16To8: the caller must not transfer, detach or write `cells` until the promise settles.
Napi::Value JsDicomCodes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DicomCells a = DicomArgs(info);
  auto out = Napi::Buffer<uint8_t>::New(env, a.mask + 1);
  std::memset(out.Data(), 0, out.Length());
  auto* w = new DicomCodesWorker(env, a.cells, a.shift, a.mask, nullptr, out);
  w->Keep(a.cells);
  w->Queue();
  return w->Promise();
}

// dicomApplyLut(cells, shift, mask, lut: Uint8Array of mask + 1) → Promise<Buffer>: lut[code].
Napi::Value JsDicomApplyLut(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DicomCells a = DicomArgs(info);
  if (!info[3].IsTypedArray() ||
      info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[3].As<Napi::TypedArray>().ElementLength() != a.mask + 1) {
    throw ArgTypeError(env, "lut must be a Uint8Array of mask + 1 entries");
  }
  auto lut = info[3].As<Napi::Uint8Array>();
  auto out = Napi::Buffer<uint8_t>::New(env, a.cells.ElementLength());
  auto* w = new DicomCodesWorker(env, a.cells, a.shift, a.mask, lut.Data(), out);
  w->Keep(a.cells);
  w->Keep(lut);
  w->Queue();
  return w->Promise();
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
  data->segmenter_ctor = Napi::Persistent(DefineJsSegmenter(env));
  env.SetInstanceData<AddonData>(data);  // deleted by N-API when the env goes away
  exports.Set("ClipModel", clip);
  exports.Set("Classifier", classifier);
  exports.Set("ProcessGroup", DefineJsProcessGroup(env));
  exports.Set("Segmenter", data->segmenter_ctor.Value());
  exports.Set("diagnostics", Napi::Function::New<JsDiagnostics>(env, "diagnostics"));
  exports.Set("setThreads", Napi::Function::New<JsSetThreads>(env, "setThreads"));
  exports.Set("getThreads", Napi::Function::New<JsGetThreads>(env, "getThreads"));
  exports.Set("allocHostBuffer", Napi::Function::New<JsAllocHostBuffer>(env, "allocHostBuffer"));
  exports.Set("holdImages", Napi::Function::New<HoldImages>(env, "holdImages"));
  exports.Set("holdArray", Napi::Function::New<HoldArray>(env, "holdArray"));
  exports.Set("recordsToImages", Napi::Function::New<JsRecordsToImages>(env, "recordsToImages"));
  exports.Set("setGraphOptimize", Napi::Function::New<JsSetGraphOptimize>(env, "setGraphOptimize"));
  exports.Set("setTf32", Napi::Function::New<JsSetTf32>(env, "setTf32"));
  exports.Set("gray16To8", Napi::Function::New<JsGray16To8>(env, "gray16To8"));
  exports.Set("dicomCodes", Napi::Function::New<JsDicomCodes>(env, "dicomCodes"));
  exports.Set("dicomApplyLut", Napi::Function::New<JsDicomApplyLut>(env, "dicomApplyLut"));
  exports.Set("setErrorClass", Napi::Function::New<JsSetErrorClass>(env, "setErrorClass"));
  return exports;
}

}  // namespace cxrmask

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return cxrmask::Init(env, exports);
}

NODE_API_MODULE(cxrmask_native, InitAddon)
