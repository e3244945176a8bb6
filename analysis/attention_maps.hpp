// Attention maps of a trained model on one input: what `rune attention` draws. Two capabilities
// a task may offer (train/task.hpp), one for text and one for images, and attention rollout.
//
// Legend: H heads, Tq queries, Tk keys, N patches, T = 1 + N tokens of a ViT (class token first).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune::analysis {

// Every attention module's per-head weights while a model reads one sentence and its output.
struct TokenAttention {
  std::vector<std::string> source, target;  // tokens as the model sees them: + <eos>; <bos> +
  struct Layer {
    std::string kind;  // "encoder self", "decoder self", "cross"
    std::int64_t layer;
    Tensor weights;  // (H, Tq, Tk)
  };
  std::vector<Layer> layers;
  std::string output;  // the model's output for the sentence (a translation)
};

// Capability: the attention of the model on a sentence (`rune attention CKPT SENTENCE`).
class TextAttentionSource {
 public:
  static constexpr const char* capability = "draw attention over a sentence";
  virtual ~TextAttentionSource() = default;
  virtual TokenAttention attention_maps(const std::string& sentence) = 0;
};

// The class token's attention over one image.
struct ImageAttention {
  std::vector<std::uint8_t> image;  // (C, S, S) bytes as the model saw them
  std::int64_t channels = 0, size = 0, grid = 0;
  std::vector<Tensor> layers;              // per layer, (H, T, T) attention weights
  std::vector<double> rollout;             // (N): the class token's row of the attention rollout
  std::int64_t label = -1, predicted = 0;  // label -1: unknown (a file)
  double confidence = 0;                   // the predicted class's probability
  std::vector<std::string> classes;
};

// Capability: the attention of an image classifier over an image (`rune attention --image`):
// an index into the test split, or a PNG file.
class ImageAttentionSource {
 public:
  static constexpr const char* capability = "draw attention over an image";
  virtual ~ImageAttentionSource() = default;
  virtual ImageAttention image_attention(const std::string& file_or_index) = 0;
};

// Attention rollout (Abnar and Zuidema, 2020): per layer, the heads' mean A, then
// A' = (A + I) / 2 with rows renormalised, multiplied from the first layer to the last
// (R = A'_L ... A'_1). Returns R (T, T) row-major, for layers of (H, T, T) weights.
std::vector<double> attention_rollout(const std::vector<Tensor>& layers);

}  // namespace rune::analysis
