// MultiheadAttention benchmarks, Runestone's side; bench/torch_attention.py runs the same cases
// with torch.nn.MultiheadAttention and bench/run.sh joins both into one table.
//
// Cases (embed_dim C = 128, 8 heads, batch 32, length 64, float32, dropout 0):
//   mha self fwd+bwd        self-attention forward and backward (input and every parameter)
//   mha causal fwd+bwd      the same with a causal mask
//   mha self fwd            forward only, no grad recorded
// Rate: the model FLOPs of forward (+ 2x for backward): projections 4 * 2*B*T*C*C, scores and
// weighted sum 2 * 2*B*T*T*C. Parameter grads are reset each run, as an optimizer loop would.
//
// Decoding (batch 4, one new token per step, C = 128, 8 heads, causal self-attention): the time
// per token after a prefix of 32, 128 and 512 tokens, with the KV cache (the new token's q, k, v
// only) and without it (the whole prefix again, keeping the last row). The cached cost should
// stay flat as the prefix grows; the uncached one grows with it. Rate: tokens per second.
//
// Timing as bench_ops.cpp: warm-up, then the median of repeated runs over about 0.4 s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "bench/timing.hpp"
#include "nn/attention.hpp"

using namespace rune;
using bench::median_seconds;
using bench::report;

namespace {

nn::MultiheadAttentionOptions options(std::int64_t C, std::int64_t H) {
  nn::MultiheadAttentionOptions o;
  o.embed_dim = C;
  o.num_heads = H;
  return o;
}

void bench_training(bool causal, bool backward) {
  const std::int64_t B = 32, T = 64, C = 128, H = 8;
  Generator g(0);
  nn::MultiheadAttention mha(options(C, H), g);
  const Tensor x = randn({B, T, C}, g), gy = randn({B, T, C}, g);
  AttentionMask mask;
  mask.causal = causal;
  const double flops = (4.0 * 2 * B * T * C * C + 2.0 * 2 * B * T * T * C) * (backward ? 3.0 : 1.0);
  double s;
  if (backward) {
    s = median_seconds([&] {
      mha.zero_grad();
      const Tensor xi = x.detach().requires_grad_();
      mha.forward(xi, xi, xi, mask).output.backward(gy);
    });
  } else {
    NoGradGuard no_grad;
    s = median_seconds([&] { (void)mha.forward(x, x, x, mask); });
  }
  const std::string name =
      std::string("mha ") + (causal ? "causal" : "self") + (backward ? " fwd+bwd" : " fwd") + " (32,64,128) h8";
  report(name, s, flops / s * 1e-9, "GFLOP/s", {flops, !causal && backward});
}

void bench_decode(std::int64_t prefix, bool cached) {
  const std::int64_t B = 4, C = 128, H = 8, steps = 8;
  Generator g(0);
  nn::MultiheadAttention mha(options(C, H), g);
  mha.eval();
  const Tensor x = randn({B, prefix + steps, C}, g);
  AttentionMask causal;
  causal.causal = true;
  NoGradGuard no_grad;
  nn::KVCache cache;
  const Tensor head = slice(x, 1, 0, prefix);
  (void)mha.forward(head, head, head, causal, nn::AttentionWeights::none, &cache);  // the prefix, cached
  double s;
  if (cached) {
    s = median_seconds([&] {
      cache.truncate(prefix);
      for (std::int64_t t = prefix; t < prefix + steps; ++t) {
        const Tensor step = slice(x, 1, t, t + 1);  // (B, 1, C)
        (void)mha.forward(step, step, step, causal, nn::AttentionWeights::none, &cache);
      }
    });
  } else {
    s = median_seconds([&] {
      for (std::int64_t t = prefix; t < prefix + steps; ++t) {
        const Tensor seen = slice(x, 1, 0, t + 1);  // (B, t+1, C): everything again
        (void)slice(mha.forward(seen, seen, seen, causal).output, 1, t, t + 1);
      }
    });
  }
  const double per_step = s / static_cast<double>(steps);
  report("decode step after " + std::to_string(prefix) + (cached ? ", kv cache" : ", no cache"), per_step,
         static_cast<double>(B) / per_step, "tokens/s");
}

}  // namespace

int main() {
  std::printf("# runestone BLAS: %s\n", blas::describe().c_str());
  bench::print_sgemm_peak();
  bench_training(false, true);
  bench_training(true, true);
  bench_training(false, false);
  for (std::int64_t prefix : {32, 128, 512}) {
    bench_decode(prefix, true);
    bench_decode(prefix, false);
  }
  return 0;
}
