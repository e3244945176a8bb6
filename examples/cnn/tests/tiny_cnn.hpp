// What the CNN task's tests share (test_cnn_task_e2e.cpp, test_cnn_mpi.cpp): a folder of small IDX
// files and the config of a tiny ResNet over it (named apart from tiny_vit.hpp's: the task tests
// of both examples link into one binary).
#pragma once

#include <filesystem>
#include <string>

#include "tests/helpers.hpp"
#include "tests/image_files.hpp"

namespace rune::examples {

// A folder of 12x12 grey IDX files: 480 training and 120 test images of 4 classes.
inline std::filesystem::path cnn_idx_folder(const std::string& name) {
  const std::filesystem::path dir = scratch_dir("cnn_" + name);
  vision::testdata::write_small_idx(dir.string());
  return dir;
}

inline std::string tiny_cnn_config(const std::filesystem::path& data, const std::string& extra = "",
                                   const std::string& stages = "3") {
  return "[task]\nname = \"cnn\"\n[data]\ndataset = \"mnist\"\ndir = \"" + data.string() + R"("
val_size = 80
batch_size = 32
eval_batch_size = 64
[model]
width = 8
blocks = 1
stages = )" +
         stages + "\n" + extra;
}

}  // namespace rune::examples
