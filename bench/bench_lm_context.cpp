// One training step of the language model (examples/lm/web.toml's: d_model 256, 4 heads, 6
// blocks, learned positions, a vocabulary of 96 characters, no dropout) on one sequence of T
// tokens, with attention's plain kernel (the (T, T) weights kept for backward) or the tiled one
// (FlashAttention: one log-sum-exp per query kept). Prints the median step time and the
// process's peak resident memory; bench/lm_context.sh runs it per T and kernel, each in a process
// of its own, so each peak is that case's alone.
//   bench_lm_context T plain|tiled [batch]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "bench/timing.hpp"
#include "nn/causal_lm.hpp"
#include "optim/adam.hpp"

using namespace rune;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_lm_context T plain|tiled [batch]\n");
    return 2;
  }
  const std::int64_t T = std::atoll(argv[1]), B = argc > 3 ? std::atoll(argv[3]) : 1, V = 96;
  nn::CausalLMOptions o;
  o.vocab = V;
  o.max_len = T;
  o.num_layers = 6;
  o.layer.d_model = 256;
  o.layer.nhead = 4;
  o.layer.dim_feedforward = 1024;
  o.layer.dropout = 0.0;
  o.layer.attention_kernel = nn::attention_kernel_from_name(argv[2]);
  Generator g(0);
  nn::CausalLM model(o, g);
  optim::AdamW opt(optim::param_groups_by_weight_decay(model.named_parameters(), 1e-4, 0.1, {"*.bias", "*norm*"}));
  const Tensor in = randint(4, V, {B, T}, g), out = randint(4, V, {B, T}, g);
  const double step = bench::median_seconds(
      [&] {
        cross_entropy(reshape(model.forward(in), {B * T, V}), reshape(out, {B * T})).backward();
        opt.step();
        opt.zero_grad();
      },
      2.0);
  std::printf("%lld\t%s\t%lld\t%.6f\t%.1f\n", static_cast<long long>(T), argv[2], static_cast<long long>(B), step,
              bench::peak_rss_mib());
  return 0;
}
