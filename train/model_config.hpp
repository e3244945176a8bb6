// The [model] keys of the library's sequence models, read from a config: what every task built on
// nn::Transformer / nn::Seq2SeqTransformer shares, so that each reads them the same way; and the
// facts a checkpoint of an nn::Seq2SeqTransformer carries in /architecture (docs/checkpoints.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "nn/seq2seq.hpp"
#include "nn/transformer.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/memory.hpp"

namespace rune::train {

// model.d_model and model.nhead (defaults given; nhead must divide d_model),
// model.num_encoder_layers and model.num_decoder_layers (2), model.dim_feedforward (4 d_model),
// model.dropout (0.1), model.activation (gelu), model.norm_first (true), model.attention_scale
// (sqrt_dk, or none: the plain dot product). Dropout draws from dropout_generator.
nn::TransformerOptions read_transformer_options(Config& c, std::int64_t d_model, std::int64_t nhead,
                                                Generator* dropout_generator);
// model.positions ("sinusoidal" or "learned"), model.tie_output (false) and model.embedding_init
// ("normal" or "xavier_uniform") into o.
void read_embedding_options(Config& c, nn::Seq2SeqOptions& o);

// Refuses a sequence model too large for this machine before it is built (train/memory.hpp): its
// parameters (vocabulary_keys: the keys its vocabularies grow with, if any), and the activations
// of a training batch of data.batch_size sequences of `length` tokens (the data's longest, at
// most data.max_len = max_len).
void check_model_memory(const Config& c, const nn::Seq2SeqOptions& o, std::int64_t batch_size, std::int64_t max_len,
                        std::int64_t length, const std::vector<SizeKey>& vocabulary_keys = {});

// Into c.architecture, every fact of `model` needed to compute with its parameters, each taken
// from the model's options and structure: model = "seq2seq_transformer", the layer sizes,
// activation, norm_first, layer_norm_eps, bias, num_kv_heads (only when not plain multi-head),
// attention_scale (only when not 1 / sqrt(d_k)),
// the final norms, embedding_scale, positions (and its formula), max_positions, tie_output, the
// pad, bos and eos ids, the attention masks and the decoder's framing ("<bos> tokens" in,
// "tokens <eos>" out). source_framing is the task's ("tokens <eos>", or "tokens").
void describe_seq2seq(const nn::Seq2SeqTransformer& model, const std::string& source_framing, Checkpoint& c);

}  // namespace rune::train
