// The checkpoint layout trainable models share (Classifier, Segmenter): a torch archive with the
// model's own header fields, "params" (every tensor of State(), on CPU) and, unless weights-only,
// "optimizer" (the AdamW state). Loading is all or nothing: everything is read and checked first.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cxrmask {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// A file could not be written (full disk, quota, permissions): rejects with code ERR_IO.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes params (and the optimizer state when `optimizer` is given) into `ar`, then saves it
// atomically: into `<path>.tmp-<pid>-<hex>` next to it (its name cut to fit 255 bytes), fsynced,
// renamed over `path`. On any write error the temp file is removed, nothing appears under `path`,
// and IoError names the file and the errno. A `path` that exists and is not a regular file (a
// symlink, FIFO, device or folder) is refused with std::invalid_argument before anything is
// written. Test-only: CXRMASK_FAULT_WRITE_BYTES=N makes the write fail with ENOSPC past N bytes,
// the message saying it was injected; a value that is not a whole number >= 0 is refused
// (std::invalid_argument naming the variable) before anything is written.
void SaveCheckpoint(torch::serialize::OutputArchive& ar, const NamedTensors& state,
                    torch::optim::AdamW* optimizer, const std::string& path);

// Opens `path` onto `device`; `what` names the kind of state in the error ("classifier state").
void OpenCheckpoint(torch::serialize::InputArchive& ar, const std::string& path,
                    const c10::Device& device, const std::string& what);

// The checkpoint's top-level fields (the model's header: ints, bools, strings) by name, from its
// pickled object graph alone: no tensor is read, so a 1 GB fine-tuned checkpoint costs what its
// header costs. Nested archives ("params", "optimizer") are left out. Errors name `what` and `path`
// as OpenCheckpoint's do.
std::unordered_map<std::string, c10::IValue> ReadCheckpointFields(const std::string& path,
                                                                  const std::string& what);

// Every tensor of `state` from the archive's "params", checked for presence, shape and dtype kind.
std::vector<at::Tensor> ReadParams(torch::serialize::InputArchive& ar, const NamedTensors& state,
                                   const std::string& path);

// The optimizer state loaded into a fresh AdamW over `current`'s parameters (it throws on a
// mismatch without touching `current`); null when the checkpoint is weights-only.
std::unique_ptr<torch::optim::AdamW> ReadOptimizer(torch::serialize::InputArchive& ar,
                                                   const torch::optim::AdamW& current, double lr,
                                                   bool weights_only);

// Copies the checked tensors into the model's state (after every read succeeded).
void CommitParams(const NamedTensors& state, const std::vector<at::Tensor>& incoming);

}  // namespace cxrmask
