// Decoding speed of the language model with multi-head, grouped-query and multi-query attention:
// the argument that autoregressive decoding is bound by reading the KV cache, not by FLOPs. For
// num_kv_heads = 8, 2 and 1 (of 8 query heads; d_model 256, 6 blocks, head dim 32, vocabulary 96,
// rotary positions), each batch (1, 16) and context (256, 1024, 4096): the cache is filled with
// `context` positions, then 32 greedy steps are timed (one new position per sequence each).
// Prints a tab-separated row per case (kv heads, parameters, KV-cache bytes per token, context,
// batch, new tokens/s) and, with an argument, writes the plot there.
//   bench_lm_decode [plot.png]
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tape.hpp"
#include "nn/causal_lm.hpp"
#include "report/plot.hpp"

using namespace rune;

int main(int argc, char** argv) {
  const std::int64_t V = 96, steps = 32;
  const std::vector<std::int64_t> kv_heads{8, 2, 1}, contexts{256, 1024, 4096}, batches{1, 16};
  std::map<std::int64_t, std::vector<report::Series>> by_batch;  // batch -> a series per kv heads
  std::printf("# kv_heads\tparameters\tkv_bytes_per_token\tcontext\tbatch\ttokens_per_s\n");
  NoGradGuard no_grad;
  for (const std::int64_t kv : kv_heads) {
    nn::CausalLMOptions o;
    o.vocab = V;
    o.max_len = contexts.back() + steps;
    o.num_layers = 6;
    o.positions = nn::PositionKind::rotary;
    o.layer.d_model = 256;
    o.layer.nhead = 8;
    o.layer.num_kv_heads = kv;
    o.layer.dim_feedforward = 1024;
    o.layer.dropout = 0.0;
    Generator g(0);
    nn::CausalLM model(o, g);
    model.eval();
    const double kv_bytes = 2.0 * static_cast<double>(o.num_layers * kv * (o.layer.d_model / o.layer.nhead)) * 4;
    for (const std::int64_t B : batches) {
      report::Series series{std::to_string(kv) + " kv heads" +
                                (kv == 8   ? " (MHA)"
                                 : kv == 1 ? " (MQA)"
                                           : " (GQA)"),
                            {}};
      for (const std::int64_t T : contexts) {
        nn::EncoderCache cache = model.make_cache();
        (void)model.forward(randint(4, V, {B, T}, g), &cache);
        Tensor next = randint(4, V, {B, 1}, g);
        const auto start = std::chrono::steady_clock::now();
        for (std::int64_t s = 0; s < steps; ++s) {
          const Tensor logits = model.forward(next, &cache);  // (B, 1, V)
          next = argmax(logits, -1).contiguous();
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double rate = static_cast<double>(B * steps) / seconds;
        std::printf("%lld\t%.0f\t%.0f\t%lld\t%lld\t%.1f\n", static_cast<long long>(kv), nn::parameter_count(o),
                    kv_bytes, static_cast<long long>(T), static_cast<long long>(B), rate);
        std::fflush(stdout);
        series.points.emplace_back(static_cast<double>(T), rate);
      }
      by_batch[B].push_back(series);
    }
  }
  if (argc > 1) {
    std::vector<std::pair<std::string, std::vector<report::Series>>> panels;
    for (const auto& [B, series] : by_batch) panels.emplace_back("new tokens/s, batch " + std::to_string(B), series);
    report::plot_panels(argv[1], "Decoding with the KV cache: 8 query heads, d_model 256, 6 blocks", "context (tokens)",
                        panels);
  }
  return 0;
}
