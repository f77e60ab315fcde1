// The JS side of distributed.h: the ProcessGroup class and Classifier.attachGroup's worker.
#pragma once

#include <napi.h>

#include <memory>

#include "classifier.h"

namespace cxrmask {

Napi::Function DefineJsProcessGroup(Napi::Env env);

// attachGroup(group | null) on a classifier: broadcast of rank 0's weights, then synced steps.
Napi::Value AttachGroupToClassifier(Napi::Env env, std::shared_ptr<Classifier> model,
                                    const Napi::Value& group, const Napi::Object& keep);

// idleStep(): a step without rows for a replica of a group (Classifier::AttachSync).
Napi::Value IdleStepOnClassifier(Napi::Env env, std::shared_ptr<Classifier> model,
                                 const Napi::Object& keep, bool read_loss);

}  // namespace cxrmask
