// The models the benchmarks time, shared by bench_translation, bench_vit and bench_distributed
// (their PyTorch twins, bench/torch_translation.py and bench/torch_vit.py, build the same).
#pragma once

#include <cstdint>

#include "nn/seq2seq.hpp"
#include "nn/vit.hpp"

namespace rune::bench {

// The translation step: batch 64, source and target length 24, vocabularies of 200.
constexpr std::int64_t kTranslationBatch = 64, kTranslationLength = 24, kTranslationVocab = 200;

// d_model 128, 8 heads, 2+2 layers, feed-forward 512, dropout 0.1.
inline nn::Seq2SeqOptions translation_options() {
  nn::Seq2SeqOptions o;
  o.src_vocab = o.tgt_vocab = kTranslationVocab;
  o.max_len = 64;
  nn::TransformerOptions& t = o.transformer;
  t.d_model = 128;
  t.nhead = 8;
  t.num_encoder_layers = t.num_decoder_layers = 2;
  t.dim_feedforward = 512;
  t.dropout = 0.1;
  return o;
}

// A ViT over square images in 4x4 patches, depth 6, 8 heads, 10 classes: bench_vit's is
// vit_options(32, 3, 128, 512); examples/vit/fashion_mnist.toml's is vit_options(28, 1, 96, 192).
inline nn::VisionTransformerOptions vit_options(std::int64_t image_size, std::int64_t channels, std::int64_t dim,
                                                std::int64_t mlp_dim) {
  nn::VisionTransformerOptions o;
  o.image_size = image_size;
  o.patch_size = 4;
  o.in_chans = channels;
  o.num_classes = 10;
  o.embed_dim = dim;
  o.depth = 6;
  o.num_heads = 8;
  o.mlp_dim = mlp_dim;
  return o;
}

}  // namespace rune::bench

namespace rune::bench {

// Model FLOPs: the multiply-adds of the matrix products (2 FLOPs each), forward only; a training
// step counts 3 times that (backward computes two products per forward one). Elementwise work,
// softmax and normalisation are not counted, as in the usual model-FLOPs utilisation.

// One attention block on `tokens` query positions reading `keys` key positions, per sequence:
// the q and output projections on the queries, k and v on the keys, QK^T and PV.
inline double attention_flops(double C, double queries, double keys) {
  return 2 * C * C * (2 * queries + 2 * keys) + 2 * 2 * queries * keys * C;
}

inline double feed_forward_flops(double C, double F, double tokens) { return 2 * 2 * C * F * tokens; }

// Forward of the translation model on B pairs of source and target length L.
inline double translation_forward_flops(const nn::Seq2SeqOptions& o, double B, double L) {
  const auto& t = o.transformer;
  const double C = static_cast<double>(t.d_model), F = static_cast<double>(t.dim_feedforward);
  const double encoder =
      static_cast<double>(t.num_encoder_layers) * (attention_flops(C, L, L) + feed_forward_flops(C, F, L));
  const double decoder =
      static_cast<double>(t.num_decoder_layers) * (2 * attention_flops(C, L, L) + feed_forward_flops(C, F, L));
  return B * (encoder + decoder + 2 * C * static_cast<double>(o.tgt_vocab) * L);
}

// Forward of the ViT on B images: patch embedding, the encoder on the patches and the class
// token, the head.
inline double vit_forward_flops(const nn::VisionTransformerOptions& o, double B) {
  const double C = static_cast<double>(o.embed_dim), F = static_cast<double>(o.mlp_dim);
  const double patches = static_cast<double>(o.grid() * o.grid()), T = patches + 1;
  const double patch = static_cast<double>(o.in_chans * o.patch_size * o.patch_size);
  return B * (2 * patches * patch * C +
              static_cast<double>(o.depth) * (attention_flops(C, T, T) + feed_forward_flops(C, F, T)) +
              2 * C * static_cast<double>(o.num_classes));
}

}  // namespace rune::bench
