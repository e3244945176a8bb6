// What the ViT task's tests share (test_vit_task.cpp, test_vit_task_e2e.cpp): a folder of small
// IDX files and the config of a tiny ViT over it.
#pragma once

#include <filesystem>
#include <string>

#include "tests/helpers.hpp"
#include "tests/image_files.hpp"

namespace rune::examples {

// A folder of 12x12 grey IDX files: 480 training and 120 test images of 4 classes.
inline std::filesystem::path idx_folder(const std::string& name) {
  const std::filesystem::path dir = scratch_dir("vit_" + name);
  vision::testdata::write_small_idx(dir.string());
  return dir;
}

inline std::string tiny_config(const std::filesystem::path& data, const std::string& extra = "") {
  return "[task]\nname = \"vit\"\n[data]\ndataset = \"mnist\"\ndir = \"" + data.string() + R"("
val_size = 80
batch_size = 32
eval_batch_size = 64
[model]
patch_size = 4
embed_dim = 16
depth = 2
num_heads = 2
mlp_dim = 32
)" + extra;
}

}  // namespace rune::examples
