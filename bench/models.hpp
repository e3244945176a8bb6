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
