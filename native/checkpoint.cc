#include "checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string_view>

namespace cxrmask {
namespace {

const char* ErrnoName(int err) {
  switch (err) {
    case ENOSPC:
      return "ENOSPC";
    case EDQUOT:
      return "EDQUOT";
    case EFBIG:
      return "EFBIG";
    case EIO:
      return "EIO";
    case EACCES:
      return "EACCES";
    case EPERM:
      return "EPERM";
    case ENOENT:
      return "ENOENT";
    case ENOTDIR:
      return "ENOTDIR";
    case EISDIR:
      return "EISDIR";
    case EROFS:
      return "EROFS";
    default:
      return "EIO";
  }
}

// The test hook that fails a save past N bytes (FileSink), as a full disk would.
constexpr const char* kFaultVar = "CXRMASK_FAULT_WRITE_BYTES";

[[noreturn]] void ThrowIo(const std::string& path, int err, bool injected) {
  throw IoError("cannot write " + path + ": " + std::strerror(err) + " (" + ErrnoName(err) +
                (injected ? std::string(", injected by ") + kFaultVar : "") + ")");
}

// Where torch's zip writer puts its bytes. It never sees a failure: an exception thrown inside the
// writer unwinds into its destructor, which writes the end of the archive again, throws again and
// terminates the process. The first error is kept instead, later bytes are dropped, and the caller
// reports it once the writer has finished.
class FileSink {
 public:
  FileSink(const std::string& path, int64_t fault_after) : fault_after_(fault_after) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) err_ = errno;
  }
  ~FileSink() {
    if (fd_ >= 0) ::close(fd_);
  }
  size_t Write(const void* data, size_t n) {
    if (err_ != 0) return n;
    if (fault_after_ >= 0 && written_ + static_cast<int64_t>(n) > fault_after_) {
      err_ = ENOSPC;
      injected_ = true;
      return n;
    }
    const char* p = static_cast<const char*>(data);
    size_t left = n;
    while (left > 0) {
      const ssize_t w = ::write(fd_, p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        err_ = errno;
        break;
      }
      p += w;
      left -= static_cast<size_t>(w);
    }
    written_ += static_cast<int64_t>(n);
    return n;
  }
  // fsync + close; the first error of the whole write, or 0.
  int Finish() {
    if (fd_ >= 0) {
      if (err_ == 0 && ::fsync(fd_) != 0) err_ = errno;
      if (::close(fd_) != 0 && err_ == 0) err_ = errno;
      fd_ = -1;
    }
    return err_;
  }
  // Whether the error came from CXRMASK_FAULT_WRITE_BYTES, not from the disk.
  bool injected() const { return injected_; }

 private:
  int fd_ = -1;
  int err_ = 0;
  int64_t written_ = 0;
  int64_t fault_after_ = -1;
  bool injected_ = false;
};

// The test hook's byte budget, -1 when unset or empty. Anything but a whole number >= 0 is refused:
// strtoll read `off` or `no` as 0, and every save then failed with a false "No space left on
// device".
int64_t FaultAfterBytes() {
  const char* limit = std::getenv(kFaultVar);
  if (limit == nullptr || *limit == '\0') return -1;
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(limit, &end, 10);
  if (!std::isdigit(static_cast<unsigned char>(*limit)) || *end != '\0' || errno == ERANGE ||
      n < 0) {
    throw std::invalid_argument(
        std::string(kFaultVar) + "=" + limit +
        " is not a byte count (a whole number >= 0; unset it to write normally)");
  }
  return n;
}

// `<path>.tmp-<pid>-<hex>`, its name part cut (at a UTF-8 character boundary) so that the temp's
// name stays within 255 bytes and its path within 4095: a target name near the limit is still
// writable.
std::string TempPathFor(const std::string& path) {
  constexpr size_t kNameMax = 255;
  constexpr size_t kPathMax = 4095;
  std::random_device rd;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", rd());
  const std::string suffix = ".tmp-" + std::to_string(::getpid()) + "-" + hex;
  const size_t slash = path.find_last_of('/');
  const size_t name_at = slash == std::string::npos ? 0 : slash + 1;
  const size_t path_room =
      kPathMax > name_at + suffix.size() ? kPathMax - name_at - suffix.size() : 0;
  size_t keep = std::min({path.size() - name_at, kNameMax - suffix.size(), path_room});
  while (keep > 0 && (static_cast<unsigned char>(path[name_at + keep]) & 0xC0) == 0x80) --keep;
  return path.substr(0, name_at + keep) + suffix;
}

void SyncParentDir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // some filesystems refuse it on a folder; the data itself is synced
  ::close(fd);
}

void SaveAtomically(torch::serialize::OutputArchive& ar, const std::string& path) {
  // The rename below replaces whatever is at `path`. TS refuses a device, FIFO or folder before
  // queueing and hands over a symlink's target; this holds for a path that changed since, and for
  // direct addon calls (a symlink included: renaming over it would leave its target stale).
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    throw std::invalid_argument(path + " is not a regular file; refusing to write over it");
  }
  const int64_t fault_after = FaultAfterBytes();
  const std::string tmp = TempPathFor(path);
  int err = 0;
  bool injected = false;
  {
    FileSink sink(tmp, fault_after);
    try {
      ar.save_to([&sink](const void* data, size_t n) { return sink.Write(data, n); });
    } catch (const c10::Error& e) {
      sink.Finish();
      ::unlink(tmp.c_str());
      throw std::runtime_error("cannot write " + path + ": " + e.what_without_backtrace());
    } catch (...) {
      sink.Finish();
      ::unlink(tmp.c_str());
      throw;
    }
    err = sink.Finish();
    injected = sink.injected();
  }
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    ThrowIo(path, err, injected);
  }
  SyncParentDir(path);
}

}  // namespace

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
  SaveAtomically(ar, path);
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

std::unordered_map<std::string, c10::IValue> ReadCheckpointFields(const std::string& path,
                                                                  const std::string& what) {
  try {
    std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
    try {
      archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    } catch (const c10::Error& e) {
      // miniz's own text ("failed finding central directory … internal miniz error") names neither
      // the file's problem nor what was expected; a file that cannot be opened keeps torch's words
      const std::string why = e.what_without_backtrace();
      if (why.find("open file failed") != std::string::npos) throw;
      throw std::invalid_argument("not a checkpoint: not the zip archive torch.save writes");
    }
    auto& zip = *archive;
    auto [pickle, size] = zip.getRecord("data.pkl");
    const std::string_view bytes(static_cast<const char*>(pickle.get()), size);
    // The rebuilders below would compute from tensor bytes (quantizer scales, sparse indices) or
    // reach outside the file (remote references); the tensors here have none. A classifier
    // checkpoint holds plain tensors only, so a file naming one is refused, not half read.
    for (const char* global : {"\n_rebuild_qtensor\n", "\n_rebuild_sparse_tensor\n",
                               "\n_rebuild_from_type_v2\n", "torch.distributed.rpc\n"}) {
      if (bytes.find(global) != std::string_view::npos) {
        throw std::invalid_argument("it holds quantized, sparse, subclassed or remote tensors");
      }
    }
    size_t at = 0;
    auto read = [&](char* buf, size_t n) {
      n = std::min(n, size - at);
      std::memcpy(buf, bytes.data() + at, n);
      at += n;
      return n;
    };
    // Classes need no compiled code: each object gets a type of its own whose attributes are what
    // its pickled state holds (a type shared by name would let two objects disagree on its slots).
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    auto resolve = [cu](const c10::QualifiedName& name) -> c10::StrongTypePtr {
      if (name.atoms().empty() || name.atoms()[0] != "__torch__") {
        return c10::StrongTypePtr(cu,
                                  torch::jit::Unpickler::defaultTypeParser(name.qualifiedName()));
      }
      return c10::StrongTypePtr(cu, c10::ClassType::create(name, cu, /*is_module=*/true));
    };
    auto build = [cu](const c10::StrongTypePtr& type, c10::IValue state) {
      if (!state.isGenericDict()) throw std::invalid_argument("an object without a state dict");
      auto dict = state.toGenericDict();
      auto cls = c10::ClassType::create(type.type_->expect<c10::ClassType>()->name(), cu, true);
      for (const auto& kv : dict) cls->addAttribute(kv.key().toStringRef(), kv.value().type());
      auto obj = c10::ivalue::Object::create(c10::StrongTypePtr(cu, cls), dict.size());
      size_t slot = 0;
      for (const auto& kv : dict) obj->setSlot(slot++, kv.value());
      return obj;
    };
    // Tensors get storages with no bytes behind them (never read; dropped below), and stay on the
    // CPU whatever device they were saved from, so nothing is read, allocated or copied for them.
    auto no_bytes = [](const std::string&) { return at::DataPtr(nullptr, c10::Device(c10::kCPU)); };
    torch::jit::Unpickler unpickler(read, resolve, build, no_bytes, c10::Device(c10::kCPU));
    // Format versions up to 2 make the unpickler walk every object's slots to restore container
    // type tags; the header's fields are ints, bools and strings, which need none.
    unpickler.set_version(std::max<uint64_t>(zip.version(), 3));
    auto root = unpickler.parse_ivalue();
    if (!root.isObject()) throw std::invalid_argument("the archive is not a module");
    auto obj = root.toObject();
    std::unordered_map<std::string, c10::IValue> fields;
    for (size_t i = 0; i < obj->slots().size(); ++i) {
      const auto& v = obj->getSlot(i);
      if (!v.isObject() && !v.isTensor()) fields.emplace(obj->type()->getAttributeName(i), v);
    }
    return fields;
  } catch (const c10::Error& e) {
    throw std::runtime_error("cannot read " + what + " " + path + ": " +
                             e.what_without_backtrace());
  } catch (const std::invalid_argument& e) {
    // the file's content is refused: an argument error (ERR_INVALID_ARG), not the addon's failure
    throw std::invalid_argument("cannot read " + what + " " + path + ": " + e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read " + what + " " + path + ": " + e.what());
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
