#include "train/model_config.hpp"

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
  t.dropout_generator = dropout_generator;
  return t;
}

void read_embedding_options(Config& c, nn::Seq2SeqOptions& o) {
  o.learned_positions =
      c.string("model.positions", "sinusoidal", {"sinusoidal", "learned"},
               "position encoding: fixed sinusoids, or a learned embedding per position") == "learned";
  o.tie_output = c.boolean("model.tie_output", false,
                           "the output projection is the target embedding's weights (Press and Wolf, 2017)");
}

}  // namespace rune::train
