#include "checkpoint.h"

#include <stdexcept>

namespace cxrmask {

void SaveCheckpoint(torch::serialize::OutputArchive& ar, const NamedTensors& state,
                    torch::optim::AdamW* optimizer, const std::string& path) {
  torch::serialize::OutputArchive params;
  for (const auto& kv : state) params.write(kv.first, kv.second.detach().to(at::kCPU));
  ar.write("params", params);
  if (optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    ar.write("optimizer", opt);
  }
  try {
    ar.save_to(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot write " + path + ": " + e.what_without_backtrace());
  }
}

void OpenCheckpoint(torch::serialize::InputArchive& ar, const std::string& path,
                    const c10::Device& device, const std::string& what) {
  try {
    ar.load_from(path, device);
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot read " + what + " " + path + ": " +
                             e.what_without_backtrace());
  }
}

std::vector<at::Tensor> ReadParams(torch::serialize::InputArchive& ar, const NamedTensors& state,
                                   const std::string& path) {
  torch::serialize::InputArchive params;
  ar.read("params", params);
  std::vector<at::Tensor> incoming;
  incoming.reserve(state.size());
  for (const auto& kv : state) {
    at::Tensor t;
    if (!params.try_read(kv.first, t)) {
      throw std::invalid_argument(path + ": tensor " + kv.first + " is missing");
    }
    if (!t.sizes().equals(kv.second.sizes())) {
      throw std::invalid_argument(path + ": tensor " + kv.first + " has another shape");
    }
    if (!t.is_floating_point() && kv.second.is_floating_point()) {
      throw std::invalid_argument(path + ": tensor " + kv.first + " has another dtype");
    }
    incoming.push_back(std::move(t));
  }
  return incoming;
}

std::unique_ptr<torch::optim::AdamW> ReadOptimizer(torch::serialize::InputArchive& ar,
                                                   const torch::optim::AdamW& current, double lr,
                                                   bool weights_only) {
  if (weights_only) return nullptr;
  torch::serialize::InputArchive opt;
  ar.read("optimizer", opt);
  auto loaded =
      std::make_unique<torch::optim::AdamW>(current.param_groups(), torch::optim::AdamWOptions(lr));
  loaded->load(opt);
  return loaded;
}

void CommitParams(const NamedTensors& state, const std::vector<at::Tensor>& incoming) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < state.size(); ++i) state[i].second.copy_(incoming[i]);
}

}  // namespace cxrmask
