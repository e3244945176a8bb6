// Memory: how much this process may use, and refusing a config whose model or batches would need
// more, before anything is allocated. Without the check, model.d_model = 1000000000 ends in
// "std::bad_alloc" (or the kernel's OOM killer), far from the key that asked for it.
//
//   const double params = nn::parameter_count(options);  // from the options alone
//   train::check_memory(c, "the model's " + train::count_text(params) + " parameters", 4 * params,
//                       {{"model.d_model", d_model, 2}, {"model.num_encoder_layers", layers}});
//   -> rune: numbers.toml (--set): model.d_model = 1000000000: the model's 5.6e19 parameters would need
//      204 EiB (...); this machine has 23.4 GiB
//
// The estimates are lower bounds (weights alone, a coarse count of a step's activations): a config
// refused here could not run; one accepted may still need more than it states. Every size is
// computed in double, so that no product of config values wraps around.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/config.hpp"

namespace rune::train {

struct MemoryLimit {
  double bytes = 0;
  std::string text;  // "this machine has 23.4 GiB", "this process may use 8 GiB (ulimit -v)"
};
// The physical memory (sysconf), or less when RLIMIT_AS (ulimit -v) or RLIMIT_DATA (ulimit -d)
// is set lower.
MemoryLimit available_memory();

// A byte count as a person reads it: "512 bytes", "1.5 KiB", "23.4 GiB", "204 EiB".
std::string bytes_text(double bytes);
// A count: exact with separators below a billion ("170,189"), else "5.6e19".
std::string count_text(double n);

// A config key a size grows with: its value and its power in the size (model.d_model: 2 in a
// model's parameters), or, for a key the size does not grow with as a power of it (a ViT's
// patches: (image size / patch size)^2), the factor it accounts for in `growth`.
struct SizeKey {
  std::string key;
  std::int64_t value;
  double power = 1;
  double growth = 0;  // 0: value^power
};

// Throws ConfigError when `bytes` (what `what` would need) exceed the limit, naming the keys to
// blame: of `keys`, those given in the config (any, if none was), the largest growth first, as
// many as it takes to account for the excess; each with its value and where it was given.
void check_memory(const Config& c, const std::string& what, double bytes, const std::vector<SizeKey>& keys,
                  const MemoryLimit& limit = available_memory());

// A coarse count of the floats one batch through a Transformer stack keeps: per layer, about 8
// (B, T, C) tensors (the input, its norm, queries, keys, values, the attention's output, the
// feed-forward's hidden) and a (B, H, T, T) one (the attention weights), which the tiled kernel
// does not keep (attention_weights = false). For evaluation (no backward, one layer's activations
// alive at a time) pass layers = 1.
double activation_floats(double batch, double length, double width, double heads, double layers,
                         bool attention_weights = true);

}  // namespace rune::train
