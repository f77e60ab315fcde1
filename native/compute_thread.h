// Every model op runs on one long-lived thread per device ("cpu", "cuda:0", ...), not on whichever
// libuv pool thread picked up the work. glibc gives each thread its own malloc arena and OpenMP its
// own team: ops hopping across the pool's threads re-fault their activations into cold arenas,
// which made a BiomedCLIP train step 35 % slower than the same step pinned to one thread
// (docs/native.md). The libuv thread still carries the op (it waits here), so the JS side is
// unchanged.
#pragma once

#include <functional>
#include <string>

namespace cxrmask {

// Runs `fn` on the compute thread for `device_key` and waits; rethrows what `fn` throws.
void RunOnComputeThread(const std::string& device_key, const std::function<void()>& fn);

}  // namespace cxrmask
