#include "train/model_config.hpp"

#include <string>

namespace rune::train {

nn::TransformerOptions read_transformer_options(Config& c, std::int64_t d_model, std::int64_t nhead,
                                                Generator* dropout_generator) {
  nn::TransformerOptions t;
  t.d_model = c.integer("model.d_model", d_model, 1);
  t.nhead = c.integer("model.nhead", nhead, 1);
  if (t.d_model % t.nhead != 0)
    c.fail("model.nhead", std::to_string(t.nhead) + " does not divide model.d_model " + std::to_string(t.d_model));
  t.num_encoder_layers = c.integer("model.num_encoder_layers", 2, 1);
  t.num_decoder_layers = c.integer("model.num_decoder_layers", 2, 1);
  t.dim_feedforward = c.integer("model.dim_feedforward", 4 * t.d_model, 1);
  t.dropout = c.number("model.dropout", 0.1, 0.0, 1.0, true);
  t.activation = nn::activation_from_name(c.string("model.activation", "gelu", {"relu", "gelu"}));
  t.norm_first = c.boolean("model.norm_first", true);
  t.dropout_generator = dropout_generator;
  return t;
}

void read_embedding_options(Config& c, nn::Seq2SeqOptions& o) {
  o.learned_positions = c.string("model.positions", "sinusoidal", {"sinusoidal", "learned"}) == "learned";
  o.tie_output = c.boolean("model.tie_output", false);
}

}  // namespace rune::train
