// Attention maps as files: PNG heatmaps a person looks at, and the weights as CSV.
#pragma once

#include <string>
#include <vector>

#include "analysis/attention_maps.hpp"

namespace rune::report {

// multi_head_attention_map.png (a heatmap per head of every attention module of every layer,
// tokens on both axes) and attention_weights.csv in `out_dir`; returns both paths.
std::vector<std::string> write_token_attention(const analysis::TokenAttention& maps, const std::string& sentence,
                                               const std::string& out_dir);

// vit_attention_map.png (the class token's attention over the patches, a panel per head of every
// layer, over the image), attention_rollout.png (the last layer's mean and the rollout across
// layers) and cls_attention.csv in `out_dir`. Returns the pictures' title, then the three paths.
std::vector<std::string> write_image_attention(const analysis::ImageAttention& a, const std::string& image,
                                               const std::string& out_dir);

}  // namespace rune::report
