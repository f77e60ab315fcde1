// attribute() on the JS ClipModel and Classifier: option parsing and the worker (attribution.h).
#pragma once

#include <napi.h>

#include <memory>

#include "classifier.h"
#include "clip_model.h"

namespace cxrmask {

// classifier.attribute(x, shape, pixels | undefined, { label, method, ... }) -> Promise<result>
Napi::Value QueueClassifierAttribution(const Napi::CallbackInfo& info,
                                       std::shared_ptr<Classifier> model);
// clip.attribute(x, shape, pixels | undefined, { text, textRows, method, ... }) -> Promise<result>
Napi::Value QueueClipAttribution(const Napi::CallbackInfo& info, std::shared_ptr<ClipModel> model);

}  // namespace cxrmask
