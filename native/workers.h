// One Napi::AsyncWorker per heavy op. Each resolves a Promise; C++ exceptions (c10::Error
// included) become rejected NativeErrors (ts/common/errors.ts) with a `code`. Thread-local torch
// guards (no-grad, inference mode, autocast) are created inside the core calls, i.e. on the worker
// thread.
#pragma once

#include <napi.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "classifier.h"
#include "clip_model.h"
#include "runtime.h"
#include "tensor_bridge.h"

namespace cxrmask {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name);
  Napi::Promise Promise() { return deferred_.Promise(); }
  // Keeps a JS object (the owning model wrapper, an input array) alive until the op ends.
  void Keep(const Napi::Object& obj) { keep_.push_back(Napi::Persistent(obj)); }

 protected:
  virtual void Run() = 0;                         // compute thread: no N-API calls
  virtual Napi::Value Result(Napi::Env env) = 0;  // JS thread
  // Which compute thread runs the op (compute_thread.h): the device the model lives on. Empty: the
  // libuv pool thread that picked the op up (plain loops that touch no LibTorch state, so they run
  // beside the model ops instead of queueing behind them).
  virtual std::string DeviceKey() const { return "cpu"; }

 private:
  void Execute() final;
  // Neither lets an exception escape: once the env is being torn down (a worker thread ending)
  // N-API can no longer settle the promise, and a throw out of a completion callback aborts the
  // whole process. The result is dropped then.
  void OnOK() final;
  void OnError(const Napi::Error& e) final;
  // The same for what node-addon-api does before OnError: it makes the error object, which
  // throws once the env is going away.
  void OnWorkComplete(Napi::Env env, napi_status status) final;
  Napi::Promise::Deferred deferred_;
  std::string code_ = "ERR_NATIVE";
  std::vector<Napi::ObjectReference> keep_;
};

class LoadClipWorker : public PromiseWorker {
 public:
  LoadClipWorker(Napi::Env env, std::string path, std::string device);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return ResolveDevice(device_).str(); }

 private:
  std::string path_, device_;
  std::shared_ptr<ClipModel> model_;
};

class EncodeImageWorker : public PromiseWorker {
 public:
  EncodeImageWorker(Napi::Env env, std::shared_ptr<ClipModel> m, ImageBatch x, bool bf16);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<ClipModel> model_;
  ImageBatch x_;
  bool bf16_;
  at::Tensor out_;
};

class EncodeTextWorker : public PromiseWorker {
 public:
  EncodeTextWorker(Napi::Env env, std::shared_ptr<ClipModel> m, InputCopy ids,
                   std::vector<int64_t> shape);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<ClipModel> model_;
  InputCopy ids_;
  std::vector<int64_t> shape_;
  at::Tensor out_;
};

class CreateClassifierWorker : public PromiseWorker {
 public:
  CreateClassifierWorker(Napi::Env env, ClassifierOptions opts);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return ResolveDevice(opts_.device).str(); }

 private:
  ClassifierOptions opts_;
  std::shared_ptr<Classifier> model_;
};

// What trainStep/idleStep resolve with: { step, loss, gradNorm, losses }. With read_loss the step
// waits for the device once, after its optimizer update is queued, and `losses` holds every step's
// loss since the last read (this one last); without it nothing is read and loss/gradNorm are NaN.
struct StepReport {
  int64_t step = 0;
  bool read = false;
  std::vector<double> losses;
  double grad_norm = 0;
};
StepReport ReportStep(Classifier& model, const StepResult& r, bool read_loss);
Napi::Object StepReportObject(Napi::Env env, const StepReport& r);

class TrainStepWorker : public PromiseWorker {
 public:
  TrainStepWorker(Napi::Env env, std::shared_ptr<Classifier> m, ImageBatch x, InputCopy labels,
                  InputCopy mask, bool read_loss);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Classifier> model_;
  ImageBatch x_;
  InputCopy labels_, mask_;
  bool read_loss_;
  StepReport report_;
};

// readLosses(): the losses of the steps that did not read them, and the last gradient norm.
class ReadLossesWorker : public PromiseWorker {
 public:
  ReadLossesWorker(Napi::Env env, std::shared_ptr<Classifier> m);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Classifier> model_;
  std::vector<double> losses_;
  double grad_norm_ = 0;
};

// predict (sigmoid probabilities) or embed (encoder features).
class InferWorker : public PromiseWorker {
 public:
  enum class Kind { kPredict, kEmbed };
  InferWorker(Napi::Env env, std::shared_ptr<Classifier> m, ImageBatch x, Kind kind);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Classifier> model_;
  ImageBatch x_;
  Kind kind_;
  at::Tensor out_;
};

class StateWorker : public PromiseWorker {
 public:
  enum class Kind { kSave, kLoad };
  StateWorker(Napi::Env env, std::shared_ptr<Classifier> m, std::string path, Kind kind,
              bool weights_only = false);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Classifier> model_;
  std::string path_;
  Kind kind_;
  bool weights_only_;
};

// recordsToImages: the uint8 -> normalised float conversion alone (tests, figures, benchmarks).
class RecordsWorker : public PromiseWorker {
 public:
  RecordsWorker(Napi::Env env, ImageBatch x, std::string device);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return ResolveDevice(device_).str(); }

 private:
  ImageBatch x_;
  std::string device_;
  at::Tensor out_;
};

// gray16To8: a 16-bit gray plane scaled to 8 bits from its real depth (gray16.h), off the JS
// thread. `samples` and `gray` are JS memory kept alive (Keep) until the op ends.
class Gray16Worker : public PromiseWorker {
 public:
  Gray16Worker(Napi::Env env, const uint16_t* samples, size_t n, int sbit,
               Napi::Buffer<uint8_t> gray);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return ""; }

 private:
  const uint16_t* samples_;
  size_t n_;
  int sbit_;
  uint8_t* out_;
  Napi::Reference<Napi::Buffer<uint8_t>> gray_;
  int bits_ = 0;
};

// dicomCodes / dicomApplyLut: a DICOM frame's codes present, or its gray plane through a code
// LUT (gray16.h), off the JS thread. `cells`, `lut` and `out` are JS memory kept alive (Keep).
// `lut` null: codes present (out has mask + 1 bytes); else the LUT applied (out has n bytes).
class DicomCodesWorker : public PromiseWorker {
 public:
  DicomCodesWorker(Napi::Env env, Napi::TypedArray cells, int shift, uint32_t mask,
                   const uint8_t* lut, Napi::Buffer<uint8_t> out);

 protected:
  void Run() override;
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return ""; }

 private:
  napi_typedarray_type type_;
  const void* cells_;
  size_t n_;
  int shift_;
  uint32_t mask_;
  const uint8_t* lut_;
  uint8_t* out_;
  Napi::Reference<Napi::Buffer<uint8_t>> out_ref_;
};

}  // namespace cxrmask
