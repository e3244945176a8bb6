#include "train/model_config.hpp"

#include <cmath>
#include <string>

namespace rune::train {

nn::TransformerOptions read_transformer_options(Config& c, std::int64_t d_model, std::int64_t nhead,
                                                Generator* dropout_generator) {
  nn::TransformerOptions t;
  t.d_model =
      c.integer("model.d_model", d_model, {1}, "width of the model: the embeddings and every layer's input and output");
  t.nhead = c.integer("model.nhead", nhead, {1}, "attention heads per layer; must divide model.d_model");
  if (t.d_model % t.nhead != 0)
    c.fail("model.nhead", std::to_string(t.nhead) + " does not divide model.d_model " + std::to_string(t.d_model));
  t.num_encoder_layers = c.integer("model.num_encoder_layers", 2, {1}, "encoder layers");
  t.num_decoder_layers = c.integer("model.num_decoder_layers", 2, {1}, "decoder layers");
  t.dim_feedforward = c.integer("model.dim_feedforward", {4 * t.d_model, "4 * model.d_model"}, {1},
                                "hidden width of each layer's feed-forward block");
  t.dropout =
      c.number("model.dropout", 0.1, {0.0, 1.0, true},
               "dropout rate on the attention weights, the residual branches and inside the feed-forward block");
  t.activation = nn::activation_from_name(
      c.string("model.activation", "gelu", {"relu", "gelu"}, "the feed-forward block's activation"));
  t.norm_first = c.boolean("model.norm_first", true,
                           "layer norm before each sublayer (pre-norm) instead of after the residual sum "
                           "(the original Transformer)");
  if (c.string("model.attention_scale", "sqrt_dk", {"sqrt_dk", "none"},
               "the attention scores' factor: q.k / sqrt(d_k) (Vaswani et al.), or the plain dot product q.k "
               "(docs/experiments/sqrt-dk.md)") == "none")
    t.attention_scale = 1.0;
  t.dropout_generator = dropout_generator;
  return t;
}

void read_embedding_options(Config& c, nn::Seq2SeqOptions& o) {
  o.learned_positions =
      c.string("model.positions", "sinusoidal", {"sinusoidal", "learned"},
               "position encoding: fixed sinusoids, or a learned embedding per position") == "learned";
  o.tie_output = c.boolean("model.tie_output", false,
                           "the output projection is the target embedding's weights (Press and Wolf, 2017)");
  o.embedding_init =
      c.string("model.embedding_init", "normal", {"normal", "xavier_uniform"},
               "initial embeddings (and learned positions): N(0, 1/d_model) as fairseq draws them, or "
               "xavier_uniform like the other matrices (torch.nn.Transformer's initialisation of the whole model)") ==
              "xavier_uniform"
          ? nn::Seq2SeqOptions::EmbeddingInit::xavier_uniform
          : nn::Seq2SeqOptions::EmbeddingInit::normal;
}

void check_model_memory(const Config& c, const nn::Seq2SeqOptions& o, std::int64_t batch_size, std::int64_t max_len,
                        std::int64_t length, const std::vector<SizeKey>& vocabulary_keys) {
  const nn::TransformerOptions& t = o.transformer;
  std::vector<SizeKey> keys{{"model.d_model", t.d_model, 2},
                            {"model.dim_feedforward", t.dim_feedforward},
                            {"model.num_encoder_layers", t.num_encoder_layers},
                            {"model.num_decoder_layers", t.num_decoder_layers}};
  keys.insert(keys.end(), vocabulary_keys.begin(), vocabulary_keys.end());
  const double params = nn::parameter_count(o);
  check_memory(c, "the model's " + count_text(params) + " parameters", 4 * params, keys);
  // every layer's activations, and the logits with their softmax
  const auto B = static_cast<double>(batch_size), T = static_cast<double>(length);
  const double floats = activation_floats(B, T, static_cast<double>(t.d_model), static_cast<double>(t.nhead),
                                          static_cast<double>(t.num_encoder_layers + t.num_decoder_layers)) +
                        2 * B * T * static_cast<double>(o.tgt_vocab);
  check_memory(c, "a training batch's activations (about " + count_text(floats) + " floats)", 4 * floats,
               {{"data.batch_size", batch_size},
                {"data.max_len", max_len, 2},
                {"model.d_model", t.d_model},
                {"model.num_encoder_layers", t.num_encoder_layers},
                {"model.num_decoder_layers", t.num_decoder_layers},
                {"model.nhead", t.nhead}});
}

void describe_seq2seq(const nn::Seq2SeqTransformer& model, const std::string& source_framing, Checkpoint& c) {
  const nn::Seq2SeqOptions& o = model.options;
  const nn::TransformerOptions& t = o.transformer;
  const nn::Transformer& core = *model.transformer;
  auto& a = c.architecture;
  const auto flag = [](bool b) { return std::int64_t{b}; };
  a["model"] = std::string("seq2seq_transformer");
  a["d_model"] = t.d_model;
  a["nhead"] = t.nhead;
  // the key/value heads as the attention modules were built (0 in the options means nhead)
  const std::int64_t kv_heads = (*core.encoder->layers)[0].self_attn->num_kv_heads;
  if (kv_heads != t.nhead) a["num_kv_heads"] = kv_heads;
  // only when not 1 / sqrt(d_model / nhead), which readers of older checkpoints assume
  if (t.attention_scale) a["attention_scale"] = *t.attention_scale;
  a["num_encoder_layers"] = static_cast<std::int64_t>(core.encoder->layers->size());
  a["num_decoder_layers"] = static_cast<std::int64_t>(core.decoder->layers->size());
  a["dim_feedforward"] = t.dim_feedforward;
  a["activation"] = nn::activation_name(t.activation);  // gelu: the exact (erf) form
  a["norm_first"] = flag(t.norm_first);
  a["layer_norm_eps"] = t.layer_norm_eps;
  a["bias"] = flag(t.bias);
  a["encoder_final_norm"] = flag(core.encoder->norm != nullptr);
  a["decoder_final_norm"] = flag(core.decoder->norm != nullptr);
  // Seq2SeqTransformer::embed: e(ids) * sqrt(C) + position t
  a["embedding_scale"] = std::sqrt(static_cast<double>(model.src_embed->embedding_dim));
  a["embedding"] = std::string("token embedding * embedding_scale + the position's row, t = 0, 1, ... on each side");
  a["positions"] = std::string(model.positions ? "learned" : "sinusoidal");
  a["positions_formula"] =
      std::string(model.positions ? "positions.weight[t], a trained (max_positions, d_model) table"
                                  : "PE[t, 2i] = sin(t / 10000^(2i / d_model)), PE[t, 2i + 1] = cos(t / "
                                    "10000^(2i / d_model)): Vaswani et al. 2017, sine and cosine interleaved; "
                                    "computed in float64, rounded to float32");
  a["max_positions"] = model.positions ? model.positions->max_len : model.sinusoids->max_len;
  a["tie_output"] = flag(model.generator == nullptr);
  a["output"] = std::string(model.generator ? "generator(x): Linear(d_model, target vocabulary)"
                                            : "x tgt_embed.weight^T + output_bias (tied)");
  a["pad_id"] = o.pad_id;
  a["bos_id"] = o.bos_id;
  a["eos_id"] = o.eos_id;
  a["attention_masks"] = std::string(
      "encoder self-attention and decoder cross-attention skip source positions holding pad_id; decoder "
      "self-attention is causal");
  a["source_framing"] = source_framing;
  a["decoder_input_framing"] = std::string("<bos> tokens");
  a["target_framing"] = std::string("tokens <eos>");
}

}  // namespace rune::train
