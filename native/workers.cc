#include "workers.h"

#include <c10/util/Exception.h>

#include <limits>
#include <stdexcept>
#include <tuple>

#include "checkpoint.h"
#include "compute_thread.h"
#include "distributed.h"
#include "gray16.h"
#include "js_objects.h"
#include "runtime.h"

namespace cxrmask {
namespace {
// TorchScript interpreter failures carry a serialized traceback; the last line is the reason.
std::string Summarize(const std::string& msg) {
  if (msg.find("TorchScript interpreter") == std::string::npos) return msg;
  size_t end = msg.find_last_not_of(" \n");
  if (end == std::string::npos) return msg;
  size_t start = msg.find_last_of('\n', end);
  std::string last = msg.substr(start == std::string::npos ? 0 : start + 1, end - start);
  const std::string prefix = "RuntimeError: ";
  if (last.rfind(prefix, 0) == 0) last = last.substr(prefix.size());
  return "TorchScript model failed: " + last;
}

// A rejection value: `new NativeError(message, code)` once ts/native.ts has handed the class over,
// else a plain Error; `code` is set on either.
Napi::Value NativeErrorValue(Napi::Env env, const std::string& message, const std::string& code) {
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object err;
  if (data != nullptr && !data->error_ctor.IsEmpty()) {
    err = data->error_ctor.New({Napi::String::New(env, message), Napi::String::New(env, code)});
  } else {
    err = Napi::Error::New(env, message).Value();
  }
  err.Set("code", Napi::String::New(env, code));
  return err;
}
}  // namespace

PromiseWorker::PromiseWorker(Napi::Env env, const char* name)
    : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

void PromiseWorker::Execute() {
  try {
    const std::string key = DeviceKey();
    if (key.empty()) {
      Run();
    } else {
      RunOnComputeThread(key, [this] { Run(); });
    }
  } catch (const DistributedError& e) {
    code_ = e.code();
    SetError(e.what());
  } catch (const IoError& e) {
    code_ = "ERR_IO";
    SetError(e.what());
  } catch (const c10::Error& e) {
    code_ = "ERR_TORCH";
    SetError(Summarize(e.what_without_backtrace()));
  } catch (const std::invalid_argument& e) {
    code_ = "ERR_INVALID_ARG";
    SetError(e.what());
  } catch (const std::exception& e) {
    std::string msg = e.what();
    code_ = msg.find("TorchScript interpreter") != std::string::npos ? "ERR_TORCH" : "ERR_NATIVE";
    SetError(Summarize(msg));
  } catch (...) {
    code_ = "ERR_NATIVE";
    SetError("unknown native error");
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  try {
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(NativeErrorValue(env, e.what(), "ERR_NATIVE"));
    }
  } catch (...) {  // the env went away under the op (see workers.h): nothing is left to settle
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  Napi::Env env = Env();
  try {
    Napi::HandleScope scope(env);
    deferred_.Reject(NativeErrorValue(env, e.Message(), code_));
  } catch (...) {  // as in OnOK
  }
}

void PromiseWorker::OnWorkComplete(Napi::Env env, napi_status status) {
  try {
    Napi::AsyncWorker::OnWorkComplete(env, status);
  } catch (...) {  // as in OnOK; the base skipped its Destroy() when it threw
    Destroy();
  }
}

// ---- ClipModel ------------------------------------------------------------------------------
LoadClipWorker::LoadClipWorker(Napi::Env env, std::string path, std::string device)
    : PromiseWorker(env, "cxrmask.ClipModel.load"),
      path_(std::move(path)),
      device_(std::move(device)) {}
void LoadClipWorker::Run() { model_ = ClipModel::Load(path_, device_); }
Napi::Value LoadClipWorker::Result(Napi::Env env) { return NewJsClip(env, model_); }

EncodeImageWorker::EncodeImageWorker(Napi::Env env, std::shared_ptr<ClipModel> m, ImageBatch x,
                                     bool bf16)
    : PromiseWorker(env, "cxrmask.ClipModel.encodeImage"),
      model_(std::move(m)),
      x_(std::move(x)),
      bf16_(bf16) {}
void EncodeImageWorker::Run() { out_ = model_->EncodeImage(x_, bf16_).to(at::kCPU).contiguous(); }
Napi::Value EncodeImageWorker::Result(Napi::Env env) { return ToFloat32Array(env, out_); }

EncodeTextWorker::EncodeTextWorker(Napi::Env env, std::shared_ptr<ClipModel> m, InputCopy ids,
                                   std::vector<int64_t> shape)
    : PromiseWorker(env, "cxrmask.ClipModel.encodeText"),
      model_(std::move(m)),
      ids_(std::move(ids)),
      shape_(std::move(shape)) {}
void EncodeTextWorker::Run() {
  out_ = model_->EncodeText(ids_.View(shape_)).to(at::kCPU).contiguous();
}
Napi::Value EncodeTextWorker::Result(Napi::Env env) { return ToFloat32Array(env, out_); }

// ---- Classifier -----------------------------------------------------------------------------
CreateClassifierWorker::CreateClassifierWorker(Napi::Env env, ClassifierOptions opts)
    : PromiseWorker(env, "cxrmask.Classifier.create"), opts_(std::move(opts)) {}
void CreateClassifierWorker::Run() { model_ = Classifier::Create(opts_); }
Napi::Value CreateClassifierWorker::Result(Napi::Env env) { return NewJsClassifier(env, model_); }

StepReport ReportStep(Classifier& model, const StepResult& r, bool read_loss) {
  StepReport out;
  out.step = r.step;
  out.read = read_loss;
  if (read_loss) std::tie(out.losses, out.grad_norm) = model.ReadLosses();
  return out;
}

Napi::Object StepReportObject(Napi::Env env, const StepReport& r) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", static_cast<double>(r.step));
  o.Set("loss", r.read && !r.losses.empty() ? r.losses.back() : nan);
  o.Set("gradNorm", r.read ? r.grad_norm : nan);
  Napi::Array losses = Napi::Array::New(env, r.losses.size());
  for (size_t i = 0; i < r.losses.size(); ++i) losses.Set(static_cast<uint32_t>(i), r.losses[i]);
  o.Set("losses", losses);
  return o;
}

TrainStepWorker::TrainStepWorker(Napi::Env env, std::shared_ptr<Classifier> m, ImageBatch x,
                                 InputCopy labels, InputCopy mask, bool read_loss)
    : PromiseWorker(env, "cxrmask.Classifier.trainStep"),
      model_(std::move(m)),
      x_(std::move(x)),
      labels_(std::move(labels)),
      mask_(std::move(mask)),
      read_loss_(read_loss) {}
void TrainStepWorker::Run() {
  const int64_t n = x_.rows();
  const int64_t l = model_->num_labels();
  std::optional<at::Tensor> mask;
  if (!mask_.empty()) mask = mask_.View({n, l});
  StepResult r = model_->TrainStep(x_, labels_.View({n, l}), mask);
  report_ = ReportStep(*model_, r, read_loss_);
  // The op may settle only once the device has read pinned host input (ImageBatch::Settle).
  x_.Settle();
}
Napi::Value TrainStepWorker::Result(Napi::Env env) { return StepReportObject(env, report_); }

ReadLossesWorker::ReadLossesWorker(Napi::Env env, std::shared_ptr<Classifier> m)
    : PromiseWorker(env, "cxrmask.Classifier.readLosses"), model_(std::move(m)) {}
void ReadLossesWorker::Run() { std::tie(losses_, grad_norm_) = model_->ReadLosses(); }
Napi::Value ReadLossesWorker::Result(Napi::Env env) {
  StepReport r;
  r.step = model_->step();
  r.read = true;
  r.losses = losses_;
  r.grad_norm = grad_norm_;
  return StepReportObject(env, r);
}

InferWorker::InferWorker(Napi::Env env, std::shared_ptr<Classifier> m, ImageBatch x, Kind kind)
    : PromiseWorker(
          env, kind == Kind::kPredict ? "cxrmask.Classifier.predict" : "cxrmask.Classifier.embed"),
      model_(std::move(m)),
      x_(std::move(x)),
      kind_(kind) {}
void InferWorker::Run() {
  out_ = kind_ == Kind::kPredict ? model_->Predict(x_) : model_->Embed(x_);
}
Napi::Value InferWorker::Result(Napi::Env env) { return ToFloat32Array(env, out_); }

StateWorker::StateWorker(Napi::Env env, std::shared_ptr<Classifier> m, std::string path, Kind kind,
                         bool weights_only)
    : PromiseWorker(env,
                    kind == Kind::kSave ? "cxrmask.Classifier.save" : "cxrmask.Classifier.load"),
      model_(std::move(m)),
      path_(std::move(path)),
      kind_(kind),
      weights_only_(weights_only) {}
void StateWorker::Run() {
  if (kind_ == Kind::kSave) {
    model_->Save(path_, weights_only_);
  } else {
    model_->Load(path_);
  }
}
Napi::Value StateWorker::Result(Napi::Env env) { return env.Undefined(); }

// ---- Records --------------------------------------------------------------------------------
RecordsWorker::RecordsWorker(Napi::Env env, ImageBatch x, std::string device)
    : PromiseWorker(env, "cxrmask.recordsToImages"), x_(std::move(x)), device_(std::move(device)) {}
void RecordsWorker::Run() {
  ApplyWorkerSettings();
  out_ = x_.On(ResolveDevice(device_)).to(at::kCPU).contiguous();
}
Napi::Value RecordsWorker::Result(Napi::Env env) { return ToFloat32Array(env, out_); }

// ---- Pixels --------------------------------------------------------------------------------
Gray16Worker::Gray16Worker(Napi::Env env, const uint16_t* samples, size_t n, int sbit,
                           Napi::Buffer<uint8_t> gray)
    : PromiseWorker(env, "cxrmask.gray16To8"),
      samples_(samples),
      n_(n),
      sbit_(sbit),
      out_(gray.Data()),
      gray_(Napi::Persistent(gray)) {}
void Gray16Worker::Run() { bits_ = Gray16To8(samples_, n_, sbit_, out_); }
Napi::Value Gray16Worker::Result(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("bits", bits_);
  o.Set("gray", gray_.Value());
  return o;
}

DicomCodesWorker::DicomCodesWorker(Napi::Env env, Napi::TypedArray cells, int shift, uint32_t mask,
                                   const uint8_t* lut, Napi::Buffer<uint8_t> out)
    : PromiseWorker(env, lut ? "cxrmask.dicomApplyLut" : "cxrmask.dicomCodes"),
      type_(cells.TypedArrayType()),
      cells_(static_cast<const uint8_t*>(cells.ArrayBuffer().Data()) + cells.ByteOffset()),
      n_(cells.ElementLength()),
      shift_(shift),
      mask_(mask),
      lut_(lut),
      out_(out.Data()),
      out_ref_(Napi::Persistent(out)) {}
void DicomCodesWorker::Run() {
  auto run = [&](auto* cells) {
    if (lut_)
      DicomApplyLut(cells, n_, shift_, mask_, lut_, out_);
    else
      DicomCodesPresent(cells, n_, shift_, mask_, out_);
  };
  if (type_ == napi_uint8_array)
    run(static_cast<const uint8_t*>(cells_));
  else if (type_ == napi_int8_array)
    run(static_cast<const int8_t*>(cells_));
  else if (type_ == napi_uint16_array)
    run(static_cast<const uint16_t*>(cells_));
  else
    run(static_cast<const int16_t*>(cells_));
}
Napi::Value DicomCodesWorker::Result(Napi::Env) { return out_ref_.Value(); }

}  // namespace cxrmask
