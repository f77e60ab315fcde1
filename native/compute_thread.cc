#include "compute_thread.h"

#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace cxrmask {
namespace {

class ComputeThread {
 public:
  ComputeThread() : thread_([this] { Loop(); }) { thread_.detach(); }

  void Run(const std::function<void()>& fn) {
    std::packaged_task<void()> task(fn);
    std::future<void> done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    done.get();
  }

 private:
  void Loop() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;
  std::thread thread_;
};

// Never destroyed: the threads outlive every op, and process exit must not join them.
std::mutex g_mu;
std::map<std::string, ComputeThread*>* g_threads = new std::map<std::string, ComputeThread*>();

}  // namespace

void RunOnComputeThread(const std::string& device_key, const std::function<void()>& fn) {
  ComputeThread* t;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto& slot = (*g_threads)[device_key];
    if (!slot) slot = new ComputeThread();
    t = slot;
  }
  t->Run(fn);
}

}  // namespace cxrmask
