#include "attribution.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace cxrmask {
namespace {

// Gradients of f at `inputs` [m,3,S,S], `batch` rows per forward/backward. Rows are independent,
// so d(sum of scores)/d(input) is each row's own gradient. Returns (grads [m,3,S,S], scores [m]).
std::pair<at::Tensor, at::Tensor> Gradients(const ScoreFn& f, const at::Tensor& inputs,
                                            int64_t batch) {
  std::vector<at::Tensor> grads, scores;
  const int64_t m = inputs.size(0);
  for (int64_t a = 0; a < m; a += batch) {
    auto in = inputs.slice(0, a, std::min(m, a + batch)).detach().requires_grad_(true);
    auto s = f(in).to(at::kFloat);
    if (s.dim() != 1 || s.size(0) != in.size(0)) {
      throw std::runtime_error("attribution score must be one value per image");
    }
    auto g = torch::autograd::grad({s.sum()}, {in}, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                   /*create_graph=*/false, /*allow_unused=*/true)[0];
    if (!g.defined()) g = at::zeros_like(in);  // the score does not depend on the input at all
    grads.push_back(g.detach().to(at::kFloat));
    scores.push_back(s.detach());
  }
  return {at::cat(grads), at::cat(scores)};
}

at::Tensor Scores(const ScoreFn& f, const at::Tensor& inputs, int64_t batch) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (int64_t a = 0; a < inputs.size(0); a += batch) {
    out.push_back(f(inputs.slice(0, a, std::min(inputs.size(0), a + batch))).to(at::kFloat));
  }
  return at::cat(out);
}

void Check(const at::Tensor& x, const AttributionOptions& o) {
  if (x.dim() != 4 || x.size(1) != 3) throw std::invalid_argument("images must be [n,3,S,S]");
  if (o.batch < 1) throw std::invalid_argument("batch must be >= 1");
  if (o.method == AttributionMethod::kSmoothGrad && (o.samples < 1 || !(o.sigma >= 0))) {
    throw std::invalid_argument("SmoothGrad needs samples >= 1 and sigma >= 0");
  }
  if (o.method == AttributionMethod::kIntegratedGradients && o.steps < 1) {
    throw std::invalid_argument("Integrated Gradients needs steps >= 1");
  }
}

}  // namespace

AttributionResult Attribute(const ScoreFn& f, const at::Tensor& x_in, const AttributionOptions& o) {
  Check(x_in, o);
  torch::AutoGradMode grad_mode(true);
  const auto x = x_in.to(at::kFloat).contiguous();
  const int64_t rows = x.size(0);
  AttributionResult r;
  at::Tensor attr;  // [rows,3,S,S]
  at::Tensor map;   // [rows,S,S]
  switch (o.method) {
    case AttributionMethod::kGradient: {
      auto gs = Gradients(f, x, o.batch);
      attr = gs.first;
      r.score = gs.second;
      map = attr.abs().sum(1);
      break;
    }
    case AttributionMethod::kSmoothGrad: {
      // Noise of image i, sample k is the generator's (i*samples + k)-th draw of a [3,S,S]
      // normal, drawn on the CPU: the same numbers as torch.randn with a seeded
      // torch.Generator in Python, on any device. The samples go `batch` at a time, drawn in
      // that order, into running sums (memory: batch images, not samples). The sums add one
      // sample at a time, as mean(0) over all of them did up to 16 samples (bit for bit);
      // above, torch's cascaded sum rounds a little differently.
      auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
      std::vector<at::Tensor> signed_rows, map_rows;
      for (int64_t i = 0; i < rows; ++i) {
        auto xi = x[i];
        const double range = (xi.max() - xi.min()).item<double>();
        auto sum = at::zeros_like(xi);
        auto abs_sum = at::zeros({xi.size(1), xi.size(2)}, xi.options());
        for (int64_t a = 0; a < o.samples; a += o.batch) {
          const int64_t b = std::min(o.samples, a + o.batch);
          std::vector<at::Tensor> noise;
          for (int64_t k = a; k < b; ++k) {
            noise.push_back(at::randn(xi.sizes(), gen, at::TensorOptions().dtype(at::kFloat)));
          }
          auto noisy = xi.unsqueeze(0) + at::stack(noise).to(x.device()) * (o.sigma * range);
          auto g = Gradients(f, noisy, o.batch).first;
          auto g_abs = g.abs().sum(1);
          for (int64_t k = 0; k < b - a; ++k) {
            sum.add_(g[k]);
            abs_sum.add_(g_abs[k]);
          }
        }
        signed_rows.push_back(sum.div_(static_cast<double>(o.samples)));
        map_rows.push_back(abs_sum.div_(static_cast<double>(o.samples)));
      }
      attr = at::stack(signed_rows);
      map = at::stack(map_rows);
      r.score = Scores(f, x, o.batch);
      break;
    }
    case AttributionMethod::kIntegratedGradients: {
      at::Tensor base = o.baseline ? o.baseline->to(x.device(), at::kFloat) : at::zeros_like(x);
      if (base.dim() == 3) base = base.unsqueeze(0).expand_as(x);
      if (!base.sizes().equals(x.sizes())) {
        throw std::invalid_argument("baseline must be [3,S,S] or [rows,3,S,S] like the images");
      }
      base = base.contiguous();
      // Midpoint rule: alpha_k = (k + 0.5) / steps. The path of all rows is cut into batches of
      // `batch` rows, built one batch at a time (memory: batch images, not rows*steps).
      const int64_t steps = o.steps;
      auto alphas = (at::arange(steps, x.options()) + 0.5) / static_cast<double>(steps);
      auto diff = x - base;
      auto sum = at::zeros_like(x);
      const int64_t total = rows * steps;
      for (int64_t a = 0; a < total; a += o.batch) {
        const int64_t b = std::min(total, a + o.batch);
        auto idx = at::arange(a, b, at::TensorOptions().dtype(at::kLong).device(x.device()));
        auto row = idx.div(steps, "floor");
        auto k = idx.remainder(steps);
        auto al = alphas.index_select(0, k).view({-1, 1, 1, 1});
        auto path = base.index_select(0, row) + al * diff.index_select(0, row);
        auto g = Gradients(f, path, o.batch).first;
        sum.index_add_(0, row, g);
      }
      attr = diff * sum / static_cast<double>(steps);
      map = attr.abs().sum(1);
      auto both = Scores(f, at::cat({x, base}), o.batch);
      r.score = both.slice(0, 0, rows);
      r.baseline_score = both.slice(0, rows, 2 * rows).to(at::kCPU).contiguous();
      break;
    }
  }
  r.map = map.to(at::kCPU).contiguous();
  r.score = r.score.to(at::kCPU).contiguous();
  if (o.want_signed) r.signed_ = attr.to(at::kCPU).contiguous();
  return r;
}

}  // namespace cxrmask
