#include "js_distributed.h"

#include <map>

#include "distributed.h"
#include "js_objects.h"
#include "tensor_bridge.h"
#include "workers.h"

namespace cxrmask {
namespace {

// Rendezvous blocks until every rank joined: it gets a thread of its own so it never holds up
// model ops queued on the device's compute thread meanwhile.
constexpr const char* kRendezvousThread = "c10d-rendezvous";

std::map<napi_env, Napi::FunctionReference>& Ctors() {
  static auto* m = new std::map<napi_env, Napi::FunctionReference>();
  return *m;
}

class CreateGroupWorker : public PromiseWorker {
 public:
  CreateGroupWorker(Napi::Env env, GroupOptions o)
      : PromiseWorker(env, "cxrmask.ProcessGroup.create"), opts_(std::move(o)) {}

 protected:
  void Run() override { group_ = DistributedGroup::Create(opts_); }
  Napi::Value Result(Napi::Env env) override;
  std::string DeviceKey() const override { return kRendezvousThread; }

 private:
  GroupOptions opts_;
  std::shared_ptr<DistributedGroup> group_;
};

// allReduce (sum), broadcast (from rank 0), barrier, close: on the device's compute thread, in
// order with the training steps whose collectives they must not interleave with.
class GroupOpWorker : public PromiseWorker {
 public:
  enum class Kind { kAllReduce, kBroadcast, kBarrier, kClose };
  GroupOpWorker(Napi::Env env, std::shared_ptr<DistributedGroup> g, Kind kind, InputCopy data,
                int64_t timeout_ms = 0)
      : PromiseWorker(env, "cxrmask.ProcessGroup.op"),
        group_(std::move(g)),
        kind_(kind),
        data_(std::move(data)),
        timeout_ms_(timeout_ms) {}

 protected:
  void Run() override {
    switch (kind_) {
      case Kind::kAllReduce:
      case Kind::kBroadcast: {
        // A copy even on CPU: the collective writes into it, and the input may be a borrowed host
        // buffer JS can see.
        auto t = data_.View({static_cast<int64_t>(data_.length())})
                     .to(group_->device(), /*non_blocking=*/false, /*copy=*/true);
        if (kind_ == Kind::kAllReduce) {
          group_->AllReduceSum({t});
        } else {
          group_->BroadcastFromRoot({t});
        }
        out_ = t.to(at::kCPU).contiguous();
        break;
      }
      case Kind::kBarrier:
        group_->Barrier(timeout_ms_);
        break;
      case Kind::kClose:
        group_->Shutdown();
        break;
    }
  }
  Napi::Value Result(Napi::Env env) override {
    if (out_.defined()) return ToFloat32Array(env, out_);
    return env.Undefined();
  }
  std::string DeviceKey() const override { return group_->device_key(); }

 private:
  std::shared_ptr<DistributedGroup> group_;
  Kind kind_;
  InputCopy data_;
  int64_t timeout_ms_;
  at::Tensor out_;
};

class AttachGroupWorker : public PromiseWorker {
 public:
  AttachGroupWorker(Napi::Env env, std::shared_ptr<Classifier> m,
                    std::shared_ptr<DistributedGroup> g)
      : PromiseWorker(env, "cxrmask.Classifier.attachGroup"),
        model_(std::move(m)),
        group_(std::move(g)) {}

 protected:
  void Run() override { model_->AttachSync(group_); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Classifier> model_;
  std::shared_ptr<DistributedGroup> group_;
};

// A data-parallel step for a replica with no rows this step: joins the group's collectives.
class IdleStepWorker : public PromiseWorker {
 public:
  IdleStepWorker(Napi::Env env, std::shared_ptr<Classifier> m, bool read_loss)
      : PromiseWorker(env, "cxrmask.Classifier.idleStep"),
        model_(std::move(m)),
        read_loss_(read_loss) {}

 protected:
  void Run() override {
    ImageBatch none;
    none.data = at::zeros({0, model_->input_dim()});
    StepResult r = model_->TrainStep(none, at::zeros({0, model_->num_labels()}), std::nullopt);
    report_ = ReportStep(*model_, r, read_loss_);
  }
  Napi::Value Result(Napi::Env env) override { return StepReportObject(env, report_); }
  std::string DeviceKey() const override { return model_->device().str(); }

 private:
  std::shared_ptr<Classifier> model_;
  bool read_loss_;
  StepReport report_;
};

class JsProcessGroup : public Napi::ObjectWrap<JsProcessGroup> {
 public:
  explicit JsProcessGroup(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsProcessGroup>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw ArgTypeError(info.Env(), "use ProcessGroup.create(options)");
    }
    group_ = *info[0].As<Napi::External<std::shared_ptr<DistributedGroup>>>().Data();
  }

  // create({ rank, worldSize, masterAddr, masterPort, backend, timeoutMs, device }) -- validated
  // in TypeScript (ts/model/process-group.ts).
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    if (!info[0].IsObject()) throw ArgTypeError(info.Env(), "options must be an object");
    auto o = info[0].As<Napi::Object>();
    GroupOptions g;
    // range-checked before the casts: an out-of-range double converts with undefined behaviour
    g.world_size = static_cast<int>(IntKey(o, "worldSize", 1, kMaxCount));
    g.rank = static_cast<int>(IntKey(o, "rank", 0, g.world_size - 1));
    g.master_port = static_cast<int>(IntKey(o, "masterPort", 1, 65535));
    g.timeout_ms = IntKey(o, "timeoutMs", 1, 30LL * 86400 * 1000);
    g.master_addr = StringKey(o, "masterAddr");
    g.backend = StringKey(o, "backend");
    g.device = StringKey(o, "device");
    auto* w = new CreateGroupWorker(info.Env(), std::move(g));
    w->Queue();
    return w->Promise();
  }

  static Napi::Value Backends(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("gloo", GlooAvailable());
    o.Set("nccl", NcclAvailable());
    return o;
  }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    return Op(info, GroupOpWorker::Kind::kAllReduce,
              InputCopy::From(info[0], napi_float32_array, "values"));
  }
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    return Op(info, GroupOpWorker::Kind::kBroadcast,
              InputCopy::From(info[0], napi_float32_array, "values"));
  }
  // barrier(timeoutMs?): a positive timeout replaces the group's for this wait.
  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    const int64_t timeout_ms = info[0].IsNumber() ? info[0].As<Napi::Number>().Int64Value() : 0;
    return Op(info, GroupOpWorker::Kind::kBarrier, InputCopy(), timeout_ms);
  }
  // close(): ends the group (peers blocked on us get ERR_DIST_PEER); idempotent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    return Op(info, GroupOpWorker::Kind::kClose, InputCopy());
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    auto g = Live(info.Env());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("rank", g->rank());
    o.Set("worldSize", g->world_size());
    o.Set("backend", g->options().backend);
    o.Set("device", g->device().str());
    o.Set("masterAddr", g->options().master_addr);
    o.Set("masterPort", g->options().master_port);
    o.Set("closed", g->closed());
    return o;
  }

  std::shared_ptr<DistributedGroup> Live(Napi::Env env) const {
    if (!group_) throw Napi::Error::New(env, "ProcessGroup is disposed");
    return group_;
  }

 private:
  Napi::Value Op(const Napi::CallbackInfo& info, GroupOpWorker::Kind kind, InputCopy data,
                 int64_t timeout_ms = 0) {
    auto* w = new GroupOpWorker(info.Env(), Live(info.Env()), kind, std::move(data), timeout_ms);
    w->Keep(info.This().As<Napi::Object>());
    w->Queue();
    return w->Promise();
  }
  std::shared_ptr<DistributedGroup> group_;
};

Napi::Value CreateGroupWorker::Result(Napi::Env env) {
  std::shared_ptr<DistributedGroup> holder = group_;
  auto ext = Napi::External<std::shared_ptr<DistributedGroup>>::New(env, &holder);
  return Ctors().at(env).New({ext});
}

}  // namespace

Napi::Function DefineJsProcessGroup(Napi::Env env) {
  Napi::Function ctor = JsProcessGroup::DefineClass(
      env, "ProcessGroup",
      {
          JsProcessGroup::StaticMethod<&JsProcessGroup::Create>("create"),
          JsProcessGroup::StaticMethod<&JsProcessGroup::Backends>("backends"),
          JsProcessGroup::InstanceMethod<&JsProcessGroup::AllReduce>("allReduce"),
          JsProcessGroup::InstanceMethod<&JsProcessGroup::Broadcast>("broadcast"),
          JsProcessGroup::InstanceMethod<&JsProcessGroup::Barrier>("barrier"),
          JsProcessGroup::InstanceMethod<&JsProcessGroup::Close>("close"),
          JsProcessGroup::InstanceMethod<&JsProcessGroup::Info>("info"),
      });
  napi_env raw = env;
  Ctors()[raw] = Napi::Persistent(ctor);
  env.AddCleanupHook([raw] { Ctors().erase(raw); });
  return ctor;
}

Napi::Value AttachGroupToClassifier(Napi::Env env, std::shared_ptr<Classifier> model,
                                    const Napi::Value& group, const Napi::Object& keep) {
  std::shared_ptr<DistributedGroup> g;
  if (!group.IsNull() && !group.IsUndefined()) {
    if (!group.IsObject() || !group.As<Napi::Object>().InstanceOf(Ctors().at(env).Value())) {
      throw ArgTypeError(env, "group must be a ProcessGroup or null");
    }
    g = JsProcessGroup::Unwrap(group.As<Napi::Object>())->Live(env);
    if (g->device() != model->device()) {
      throw ArgRangeError(env, "the group's device " + g->device().str() +
                                   " differs from the classifier's " + model->device().str());
    }
  }
  auto* w = new AttachGroupWorker(env, std::move(model), std::move(g));
  w->Keep(keep);
  if (group.IsObject()) w->Keep(group.As<Napi::Object>());
  w->Queue();
  return w->Promise();
}

Napi::Value IdleStepOnClassifier(Napi::Env env, std::shared_ptr<Classifier> model,
                                 const Napi::Object& keep, bool read_loss) {
  auto* w = new IdleStepWorker(env, std::move(model), read_loss);
  w->Keep(keep);
  w->Queue();
  return w->Promise();
}

}  // namespace cxrmask
