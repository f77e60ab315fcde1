#include "distributed.h"

#include <c10/util/Exception.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include "runtime.h"

namespace cxrmask {
namespace {

// DDP's default bucket size: large enough that per-call latency is amortised, small enough that
// the flat copy stays a fraction of the model (BiomedCLIP's ViT-B/16: ~330 MB of fp32 gradients).
constexpr int64_t kBucketBytes = 25 << 20;

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// c10d/gloo say what happened only in words; the code lets callers branch without parsing them.
std::string CodeFor(const std::string& message) {
  const std::string m = Lower(message);
  for (const char* k : {"closed by peer", "reset by peer", "broken pipe", "connection refused",
                        "connection closed", "read error", "socket closed", "eof"}) {
    if (m.find(k) != std::string::npos) return "ERR_DIST_PEER";
  }
  for (const char* k : {"timed out", "timeout"}) {
    if (m.find(k) != std::string::npos) return "ERR_DIST_TIMEOUT";
  }
  return "ERR_DIST";
}

// Tensors grouped by dtype, then cut into buckets of at most kBucketBytes (a tensor larger than
// that is a bucket of its own).
std::vector<std::vector<at::Tensor>> Buckets(const std::vector<at::Tensor>& tensors) {
  std::map<at::ScalarType, std::vector<at::Tensor>> by_type;
  for (const auto& t : tensors) {
    if (t.defined() && t.numel() > 0) by_type[t.scalar_type()].push_back(t);
  }
  std::vector<std::vector<at::Tensor>> out;
  for (auto& [type, ts] : by_type) {
    std::vector<at::Tensor> cur;
    int64_t bytes = 0;
    for (auto& t : ts) {
      const int64_t b = t.numel() * static_cast<int64_t>(t.element_size());
      if (!cur.empty() && bytes + b > kBucketBytes) {
        out.push_back(std::move(cur));
        cur.clear();
        bytes = 0;
      }
      cur.push_back(t);
      bytes += b;
    }
    if (!cur.empty()) out.push_back(std::move(cur));
  }
  return out;
}

at::Tensor Flatten(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> flat;
  flat.reserve(ts.size());
  for (const auto& t : ts) flat.push_back(t.detach().reshape({-1}));
  return at::cat(flat);
}

void Unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& ts) {
  int64_t off = 0;
  for (const auto& t : ts) {
    const int64_t n = t.numel();
    t.detach().copy_(flat.narrow(0, off, n).view(t.sizes()));
    off += n;
  }
}

bool IsLoopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

// The store at addr:port. c10d bounds the client's connect by the timeout, but not its wait for the
// server's first answer: a listener that accepts and never answers (MASTER_PORT taken by another
// program) would hold the rendezvous, and the libuv thread that carries it, forever, and a process
// cannot exit while a libuv thread is busy. So the store is built on a thread of its own; past
// twice the timeout that thread is left behind, blocked, and the rendezvous fails with a timeout.
c10::intrusive_ptr<c10d::TCPStore> ConnectStore(const std::string& addr,
                                                const c10d::TCPStoreOptions& so,
                                                int64_t timeout_ms) {
  auto made = std::make_shared<std::promise<c10::intrusive_ptr<c10d::TCPStore>>>();
  auto future = made->get_future();
  std::thread([made, addr, so] {
    try {
      made->set_value(c10::make_intrusive<c10d::TCPStore>(addr, so));
    } catch (...) {
      made->set_exception(std::current_exception());
    }
  }).detach();
  if (future.wait_for(std::chrono::milliseconds(2 * timeout_ms)) == std::future_status::timeout) {
    throw std::runtime_error("timed out after " + std::to_string(2 * timeout_ms) +
                             " ms (twice the group timeout) waiting for the store at " + addr +
                             ":" + std::to_string(so.port) +
                             " to answer; is MASTER_PORT taken by another program?");
  }
  return future.get();
}

}  // namespace

#ifdef USE_C10D_GLOO
bool GlooAvailable() { return true; }
c10::intrusive_ptr<c10d::Backend> MakeGlooBackend(const c10::intrusive_ptr<c10d::Store>& store,
                                                  const GroupOptions& opts) {
  auto o = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(opts.timeout_ms));
  // As torch.distributed does: GLOO_SOCKET_IFNAME names the interface; else this host's address,
  // except that an all-local group stays on loopback (hosts whose name does not resolve).
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname != nullptr && *ifname != '\0') {
    o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (IsLoopback(opts.master_addr)) {
    o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, opts.rank, opts.world_size, o);
}
#else
bool GlooAvailable() { return false; }
c10::intrusive_ptr<c10d::Backend> MakeGlooBackend(const c10::intrusive_ptr<c10d::Store>&,
                                                  const GroupOptions&) {
  throw DistributedError(
      "this build of the addon has no gloo backend (gloo headers were not found at build time; "
      "install libgloo-dev and rebuild: bash scripts/setup.sh)",
      "ERR_DIST_UNAVAILABLE");
}
#endif

DistributedGroup::DistributedGroup(const GroupOptions& opts)
    : opts_(opts), device_(ResolveDevice(opts.device)) {}

DistributedGroup::~DistributedGroup() = default;

template <typename F>
void DistributedGroup::Guarded(const char* what, F&& fn) {
  const std::string where = std::string("distributed ") + what + " (rank " +
                            std::to_string(opts_.rank) + " of " + std::to_string(opts_.world_size) +
                            ", " + opts_.backend + ", " + opts_.master_addr + ":" +
                            std::to_string(opts_.master_port) + ")";
  try {
    fn();
  } catch (const DistributedError&) {
    throw;
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    throw DistributedError(where + " failed: " + msg, CodeFor(msg));
  } catch (const std::exception& e) {
    throw DistributedError(where + " failed: " + e.what(), CodeFor(e.what()));
  }
}

std::shared_ptr<DistributedGroup> DistributedGroup::Create(const GroupOptions& opts) {
  if (opts.world_size < 1 || opts.rank < 0 || opts.rank >= opts.world_size) {
    throw std::invalid_argument("rank must be in [0, worldSize)");
  }
  if (opts.backend != "gloo" && opts.backend != "nccl") {
    throw std::invalid_argument("backend must be 'gloo' or 'nccl', got '" + opts.backend + "'");
  }
  std::shared_ptr<DistributedGroup> g(new DistributedGroup(opts));
  if (opts.backend == "nccl" && !g->device_.is_cuda()) {
    throw std::invalid_argument("the nccl backend needs a CUDA device, got " + g->device_.str());
  }
  if (opts.backend == "gloo" && !g->device_.is_cpu()) {
    // gloo reduces host tensors; CUDA training uses nccl.
    throw std::invalid_argument("the gloo backend runs on cpu; use nccl for " + g->device_.str());
  }
  g->Guarded("rendezvous", [&] {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(opts.master_port);
    so.isServer = opts.rank == 0;
    so.numWorkers = static_cast<std::size_t>(opts.world_size);
    so.waitWorkers = true;
    so.timeout = std::chrono::milliseconds(opts.timeout_ms);
    g->store_ = ConnectStore(opts.master_addr, so, opts.timeout_ms);
    g->backend_ = opts.backend == "gloo" ? MakeGlooBackend(g->store_, opts)
                                         : MakeNcclBackend(g->store_, opts);
  });
  return g;
}

void DistributedGroup::AllReduceSum(const std::vector<at::Tensor>& tensors) {
  if (!backend_) throw DistributedError("the process group is closed", "ERR_DIST_CLOSED");
  Guarded("allreduce", [&] {
    // Every bucket is queued before any is awaited, so transfers overlap the flat copies.
    std::vector<std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>>> pending;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& bucket : Buckets(tensors)) {
      std::vector<at::Tensor> flat{Flatten(bucket)};
      works.push_back(backend_->allreduce(flat, c10d::AllreduceOptions{}));
      pending.emplace_back(std::move(bucket), std::move(flat));
    }
    for (size_t i = 0; i < works.size(); ++i) {
      works[i]->wait();
      Unflatten(pending[i].second[0], pending[i].first);
    }
  });
}

void DistributedGroup::BroadcastFromRoot(const std::vector<at::Tensor>& tensors) {
  if (!backend_) throw DistributedError("the process group is closed", "ERR_DIST_CLOSED");
  Guarded("broadcast", [&] {
    for (auto& bucket : Buckets(tensors)) {
      std::vector<at::Tensor> flat{Flatten(bucket)};
      c10d::BroadcastOptions bo;
      bo.rootRank = 0;
      backend_->broadcast(flat, bo)->wait();
      Unflatten(flat[0], bucket);
    }
  });
}

void DistributedGroup::Barrier(int64_t timeout_ms) {
  if (!backend_) throw DistributedError("the process group is closed", "ERR_DIST_CLOSED");
  // A one-element all-reduce: the same rendezvous as barrier() on every backend, and on NCCL it
  // needs no guess of which GPU this rank uses.
  Guarded("barrier", [&] {
    std::vector<at::Tensor> t{at::zeros({1}, at::TensorOptions(device_))};
    c10d::AllreduceOptions ao;
    if (timeout_ms > 0) ao.timeout = std::chrono::milliseconds(timeout_ms);
    backend_->allreduce(t, ao)->wait();
  });
}

void DistributedGroup::Shutdown() {
  if (!backend_) return;
  try {
    backend_->shutdown();
  } catch (...) {
    // Closing is best effort: the peers see the connection drop either way.
  }
  backend_.reset();
  store_.reset();
}

}  // namespace cxrmask
