// The ViT task's keys against `rune config` (tests/test_config_reference.cpp has the other tasks):
// a tiny real run on IDX files written here reads exactly the keys the listing gives for its
// values, so no key is read after the task's describe-only return unlisted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/config_check.hpp"
#include "tests/helpers.hpp"
#include "tests/image_files.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(ViTConfig, ATinyRunReadsExactlyTheListedKeys) {
  const fs::path dir = scratch_dir("vit_config");
  vision::testdata::write_idx(dir.string(), vision::testdata::synthetic_images(96, 1, 8, 4, 1),
                              vision::testdata::synthetic_images(16, 1, 8, 4, 2), false);
  std::ofstream(dir / "tiny.toml") << R"([task]
name = "vit"
[data]
dataset = "mnist"
dir = "."
val_size = 16
batch_size = 16
eval_batch_size = 16
image_size = 12
resize = "pad"
[model]
patch_size = 4
embed_dim = 8
depth = 1
num_heads = 2
[train]
epochs = 1
optimizer = "sgd"
)";
  const RunResult r = run_rune("train tiny.toml --no-progress", dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  expect_resolved_config_is_listed((dir / "runs" / "tiny" / "config.toml").string());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune::examples
