#include "fused_adamw.h"

#include <memory>
#include <vector>

namespace cxrmask {

void FusedAdamW::Step(torch::optim::AdamW& optimizer) {
  torch::NoGradGuard no_grad;
  auto& states = optimizer.state();
  std::vector<at::Tensor> advance;
  struct Call {
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    torch::optim::AdamWOptions* o;
  };
  std::vector<Call> calls;
  for (auto& group : optimizer.param_groups()) {
    Call c;
    c.o = &static_cast<torch::optim::AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      void* key = p.unsafeGetTensorImpl();
      auto it = states.find(key);
      if (it == states.end()) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
        it = states.emplace(key, std::move(fresh)).first;
      }
      auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
      const double before = static_cast<double>(st.step());
      st.step(st.step() + 1);
      // The kernel reads the (already incremented) step for its bias corrections.
      StepSlot& slot = slots_[key];
      if (slot.count.defined() && slot.value == before && slot.count.device() == p.device()) {
        advance.push_back(slot.count);
      } else {
        slot.count =
            at::full({}, before + 1, at::TensorOptions().dtype(at::kFloat).device(p.device()));
      }
      slot.value = before + 1;
      c.params.push_back(p);
      c.grads.push_back(p.grad());
      c.exp_avgs.push_back(st.exp_avg());
      c.exp_avg_sqs.push_back(st.exp_avg_sq());
      c.steps.push_back(slot.count);
    }
    if (!c.params.empty()) calls.push_back(std::move(c));
  }
  if (!advance.empty()) at::_foreach_add_(advance, 1);
  for (auto& c : calls) {
    const auto& o = *c.o;
    at::_fused_adamw_(c.params, c.grads, c.exp_avgs, c.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, c.steps,
                      o.lr(), std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(),
                      o.eps(), /*amsgrad=*/false, /*maximize=*/false);
  }
}

at::Tensor ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return {};
  std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
  at::Tensor total = at::linalg_vector_norm(at::stack(norms), 2).to(at::kFloat);
  at::Tensor factor = (max_norm / (total + 1e-6)).clamp_max(1.0);
  at::_foreach_mul_(grads, factor);
  return total;
}

}  // namespace cxrmask
