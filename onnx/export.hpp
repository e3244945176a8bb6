// Whole models as ONNX graphs, built from onnx/graph.hpp's pieces: the Vision Transformer and the
// ResNet (images in, logits out) and the encoder-decoder Transformer as an encoder graph and a
// decoder-step graph with the self-attention cache as inputs and outputs (cached greedy or beam
// decoding outside Runestone). docs/onnx.md describes the layouts and runs them from Node.js.
//
// Legend: B batch ("batch"), C_in channels, S image side, K classes, N source length
// ("source_length"), C d_model, L decoder layers, Hkv key/value heads, D head dim, V target
// vocabulary, P cached positions ("past_length").
//
// ViT graph "vit":
//   images float (B, C_in, S, S): pixel values 0..255 at the model's input size, channels first
//   -> logits float (B, K)
//   The graph normalises as training did, (v / 255 - mean) / std per channel, with the constants
//   normalize.scale and normalize.shift.
// ResNet graph "resnet": the ViT's input, its normalisation and its output; between them the
//   ResNet in evaluation mode (nn/resnet.hpp): Conv without bias, BatchNormalization by the
//   running statistics, Relu, the residual Add (the downsample's Conv and BatchNormalization on
//   the shortcut where the shape changes), GlobalAveragePool, Flatten, then fc as MatMul + Add.
//   The checkpoint's names (layer2.0.downsample.0.weight, bn1.running_mean); num_batches_tracked
//   is not read by the graph and not in it.
// Encoder graph "encoder":
//   src int64 (B, N): source token ids, each row `tokens <eos>` padded with pad_id
//   -> memory float (B, N, C), src_padding_mask bool (B, N) (true = pad)
// Decoder-step graph "decoder_step", one new token per row:
//   token int64 (B, 1), position int64 (1) (= P, the positions decoded before it), memory,
//   src_padding_mask, past_key_<l> and past_value_<l> float (B, Hkv, P, D) for l = 0..L-1
//   (P = 0 at the first step, whose token is bos_id)
//   -> logits float (B, V), log_probs float (B, V) (log-softmax of the logits),
//      present_key_<l>, present_value_<l> float (B, Hkv, P + 1, D)
// Both carry the caller's metadata plus decoder_layers (L), kv_heads (Hkv), head_dim (D), d_model
// and target_vocabulary_size (V).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nn/resnet.hpp"
#include "nn/seq2seq.hpp"
#include "nn/vit.hpp"
#include "onnx/model.hpp"

namespace rune::onnx_export {

using Metadata = std::map<std::string, std::string>;

// The ViT's graph; mean and std per input channel (of pixel / 255), as the model was trained with.
Model vit_model(const nn::VisionTransformer& model, const std::vector<double>& mean, const std::vector<double>& stdev,
                const Metadata& metadata);

// The ResNet's graph for images of image_size x image_size pixels (the task's input size: a ResNet
// itself reads any size); mean and std as vit_model's.
Model resnet_model(const nn::ResNet& model, std::int64_t image_size, const std::vector<double>& mean,
                   const std::vector<double>& stdev, const Metadata& metadata);

// The encoder-decoder's two graphs.
Model seq2seq_encoder_model(const nn::Seq2SeqTransformer& model, const Metadata& metadata);
Model seq2seq_decoder_model(const nn::Seq2SeqTransformer& model, const Metadata& metadata);

// The file names an export to `path` writes: for the encoder-decoder, path without its .onnx
// ending plus "-encoder.onnx" and "-decoder.onnx" ("out/numbers.onnx" -> "out/numbers-encoder.onnx").
std::vector<std::string> seq2seq_paths(const std::string& path);

// Each checked (the ONNX checker's full check) and written atomically; the paths written.
std::vector<std::string> write_vit(const nn::VisionTransformer& model, const std::vector<double>& mean,
                                   const std::vector<double>& stdev, const Metadata& metadata, const std::string& path);
std::vector<std::string> write_resnet(const nn::ResNet& model, std::int64_t image_size, const std::vector<double>& mean,
                                      const std::vector<double>& stdev, const Metadata& metadata,
                                      const std::string& path);
std::vector<std::string> write_seq2seq(const nn::Seq2SeqTransformer& model, const Metadata& metadata,
                                       const std::string& path);

}  // namespace rune::onnx_export
