// The translation model's costs, Runestone's side; bench/torch_translation.py runs the same cases
// with torch.nn.Transformer and bench/run.sh joins them.
//
//   train step     batch 64, source and target length 24, d_model 128, 8 heads, 2+2 layers,
//                  feed-forward 512, vocabularies of 200: embeddings, the Transformer, the output
//                  projection, label-smoothed cross-entropy, backward, an AdamW step
//   greedy decode  64 sources of length 24 decoded to 24 tokens: ours with the KV cache, one
//                  new position per step; PyTorch's re-runs the decoder over the prefix each step
// Rates: sequences per second. Timing as bench_ops.cpp (warm-up, median over about 0.4 s).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "bench/models.hpp"
#include "bench/timing.hpp"
#include "optim/adam.hpp"

using namespace rune;
using bench::median_seconds;
using bench::report;

namespace {

constexpr std::int64_t B = bench::kTranslationBatch, L = bench::kTranslationLength, V = bench::kTranslationVocab;

// Random ids in [4, V): no padding, every position real.
Tensor ids(Generator& g) { return randint(4, V, {B, L}, g); }

}  // namespace

int main() {
  std::printf("# runestone BLAS: %s\n", blas::describe().c_str());
  bench::print_sgemm_peak();
  Generator g(0);
  nn::Seq2SeqTransformer model(bench::translation_options(), g);
  optim::AdamW opt(optim::param_groups_by_weight_decay(model.named_parameters(), 1e-4, 0.01, {"*.bias", "*norm*"}));
  const Tensor src = ids(g), tgt_in = ids(g), tgt_out = ids(g);
  CrossEntropyOptions ce;
  ce.label_smoothing = 0.1;
  const double step = median_seconds([&] {
    const Tensor logits = model.forward(src, tgt_in);
    cross_entropy(reshape(logits, {B * L, V}), reshape(tgt_out, {B * L}), ce).backward();
    opt.step();
    opt.zero_grad();
  });
  report("translation train step (64x24, 2+2 layers, d128)", step, B / step, "seq/s",
         {3 * bench::translation_forward_flops(bench::translation_options(), B, L), true});
  model.eval();
  const double decode = median_seconds([&] { (void)model.greedy(src, L); });
  report("greedy decode 64x24 (ours: kv cache)", decode, B / decode, "seq/s");
  return 0;
}
