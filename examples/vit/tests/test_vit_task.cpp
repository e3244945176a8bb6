// The ViT example's task, the fast part: prefetched batches equal batches made on demand,
// attention rollout follows its definition, and checkpoints carry the model's architecture. The trainings and the runs
// of the `rune` binary are in test_vit_task_e2e.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "autograd/ops.hpp"
#include "examples/vit/tests/tiny_vit.hpp"
#include "examples/vit/vit_task.hpp"
#include "optim/optimizer.hpp"
#include "tests/described.hpp"
#include "tests/helpers.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(ViTTask, PrefetchedBatchesEqualBatchesMadeOnDemand) {
  const fs::path data = idx_folder("prefetch");
  Generator i1(1), d1(2), i2(1), d2(2);
  train::Config c1 = train::Config::parse(tiny_config(data), "a.toml"),
                c2 = train::Config::parse(tiny_config(data), "b.toml");
  ViTTask a(c1, {7, &i1, &d1}), b(c2, {7, &i2, &d2});
  // a walks in order (each batch prepared on the other thread during the previous one); b jumps
  std::vector<double> in_order;
  for (std::int64_t i = 0; i < a.batches_per_epoch() + 2; ++i)
    in_order.push_back(a.train_batch(i / a.batches_per_epoch(), i % a.batches_per_epoch()).loss.item());
  const std::int64_t n = a.batches_per_epoch();
  EXPECT_EQ(b.train_batch(1, 1).loss.item(), in_order[static_cast<std::size_t>(n + 1)]);
  EXPECT_EQ(b.train_batch(0, 3).loss.item(), in_order[3]);
  EXPECT_EQ(b.train_batch(0, 4).loss.item(), in_order[4]);
  EXPECT_NE(in_order[0], in_order[1]);
  fs::remove_all(data);
}

// A test split whose images differ in size from the training split's is refused as the data is
// loaded, naming both files and both sizes (not at the first evaluation).
TEST(ViTTask, ATestSplitOfAnotherImageSizeIsRefusedWhenLoaded) {
  const fs::path data = scratch_dir("vit_test_size");
  vision::testdata::write_idx(data.string(), vision::testdata::synthetic_images(480, 1, 12, 4, 1),
                              vision::testdata::synthetic_images(20, 1, 10, 4, 2), false);
  Generator init(1), dropout(2);
  train::Config c = train::Config::parse(tiny_config(data), "v.toml");
  const std::string e = error_of([&] { ViTTask task(c, {7, &init, &dropout}); });
  EXPECT_NE(e.find("data.dir: " + (data / "t10k-images-idx3-ubyte").string() + ": the test images are 10x10 pixels, " +
                   "the training images (" + (data / "train-images-idx3-ubyte").string() + ") 12x12"),
            std::string::npos)
      << e;
  fs::remove_all(data);
}

// A checkpoint whose position embedding holds the class token's row alone has no patch grid to
// resize: refused naming the file, the parameter and its shape.
TEST(ViTTask, APositionEmbeddingWithoutPatchPositionsIsRefusedByName) {
  const fs::path data = idx_folder("cls_only");
  Generator init(1), dropout(2);
  train::Config c = train::Config::parse(tiny_config(data), "v.toml");
  ViTTask task(c, {7, &init, &dropout});
  train::Checkpoint bad;
  bad.params = task.model().named_parameters();
  for (auto& [name, p] : bad.params)
    if (name == "pos_embed") p = zeros({1, 1, 16});
  const std::string e = error_of([&] { task.load_parameters(bad, "cls_only.h5"); });
  EXPECT_NE(e.find("cls_only.h5: pos_embed [1,1,16] holds the class token's row alone, no patch positions"),
            std::string::npos)
      << e;
  fs::remove_all(data);
}

// A model or a batch too large for the machine is refused by key before anything is built.
TEST(ViTTask, ModelsAndBatchesTooLargeForMemoryAreRefusedByKey) {
  const fs::path data = idx_folder("memory");
  for (const auto& [set, want] : std::vector<std::pair<std::string, std::string>>{
           {"model.embed_dim=1000000000", "v.toml (--set): model.embed_dim = 1000000000: the model's "},
           {"data.eval_batch_size=1000000000",
            "v.toml (--set): data.eval_batch_size = 1000000000: an evaluation batch's activations"},
           {"data.image_size=1000000", "v.toml (--set): data.image_size = 1000000: the model's "}}) {
    Generator init(1), dropout(2);
    train::Config c = train::Config::parse(tiny_config(data), "v.toml");
    c.set(set);
    if (set.rfind("data.image_size", 0) == 0) c.set("data.resize=pad");
    const std::string e = error_of([&] { ViTTask task(c, {7, &init, &dropout}); });
    EXPECT_NE(e.find(want), std::string::npos) << e;
    EXPECT_NE(e.find(" would need "), std::string::npos) << e;
  }
  fs::remove_all(data);
}

TEST(ViTTask, AttentionRolloutFollowsItsDefinition) {
  const std::int64_t T = 4;
  // identity attention everywhere: the rollout is the identity
  const Tensor eye =
      reshape(from_vector(std::vector<double>{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, {T, T}), {1, T, T});
  std::vector<double> r = analysis::attention_rollout({eye, eye, eye});
  for (std::int64_t i = 0; i < T; ++i)
    for (std::int64_t j = 0; j < T; ++j) EXPECT_NEAR(r[static_cast<std::size_t>(i * T + j)], i == j ? 1.0 : 0.0, 1e-12);
  // two random layers of 3 heads against the formula computed here with tensors
  Generator g(3);
  std::vector<Tensor> layers{softmax(randn({3, T, T}, g, DType::float64), -1),
                             softmax(randn({3, T, T}, g, DType::float64), -1)};
  const auto step = [&](const Tensor& w) {
    const Tensor a = mean(w, {0}) * 0.5 + reshape(eye, {T, T}) * 0.5;  // rows already sum to 1
    return a / sum(a, {1}, true);
  };
  const Tensor expected = matmul(step(layers[1]), step(layers[0]));
  r = analysis::attention_rollout(layers);
  EXPECT_LT(max_abs_diff(from_vector(r, {T, T}), expected), 1e-12);
  for (std::int64_t i = 0; i < T; ++i) {
    double row = 0;
    for (std::int64_t j = 0; j < T; ++j) row += r[static_cast<std::size_t>(i * T + j)];
    EXPECT_NEAR(row, 1.0, 1e-12);
  }
  EXPECT_THROW(analysis::attention_rollout({}), std::invalid_argument);
  EXPECT_THROW(analysis::attention_rollout({eye, zeros({1, 3, 3}, DType::float64)}), std::invalid_argument);
}

TEST(ViTTask, CheckpointCarriesTheArchitectureOfItsOptions) {
  const fs::path data = idx_folder("described");
  const auto checkpoint = [&](const std::string& data_keys, const std::string& model_keys) {
    Generator init(1), dropout(2);
    std::string text = tiny_config(data, model_keys);
    text.insert(text.find("[model]"), data_keys);
    train::Config c = train::Config::parse(text, "described.toml");
    ViTTask task(c, {0, &init, &dropout});
    return saved_and_read(task, "vit_described");
  };
  const train::Checkpoint d = checkpoint("", "");
  EXPECT_EQ(fact<std::string>(d, "model"), "vision_transformer");
  EXPECT_EQ(fact<std::int64_t>(d, "image_size"), 12);
  EXPECT_EQ(fact<std::int64_t>(d, "native_image_size"), 12);
  EXPECT_EQ(fact<std::int64_t>(d, "patch_size"), 4);
  EXPECT_EQ(fact<std::int64_t>(d, "grid"), 3);
  EXPECT_EQ(fact<std::int64_t>(d, "in_chans"), 1);
  EXPECT_EQ(fact<std::int64_t>(d, "num_classes"), 10);  // MNIST's classes (the data uses four)
  EXPECT_EQ(fact<std::int64_t>(d, "embed_dim"), 16);
  EXPECT_EQ(fact<std::int64_t>(d, "depth"), 2);
  EXPECT_EQ(fact<std::int64_t>(d, "num_heads"), 2);
  EXPECT_EQ(fact<std::int64_t>(d, "mlp_dim"), 32);
  EXPECT_EQ(fact<std::string>(d, "activation"), "gelu");
  EXPECT_EQ(fact<std::int64_t>(d, "norm_first"), 1);
  EXPECT_EQ(fact<double>(d, "layer_norm_eps"), 1e-5);
  EXPECT_EQ(fact<std::int64_t>(d, "encoder_final_norm"), 1);
  EXPECT_EQ(fact<std::string>(d, "pool"), "cls");
  EXPECT_EQ(fact<std::string>(d, "resize"), "none");
  EXPECT_EQ(d.meta_numbers.at(fact<std::string>(d, "normalization_mean")).size(), 1u);
  EXPECT_EQ(d.meta_numbers.at(fact<std::string>(d, "normalization_std")).size(), 1u);
  EXPECT_EQ(d.meta_strings.at(fact<std::string>(d, "classes")).size(), 10u);

  const train::Checkpoint o = checkpoint("image_size = 16\nresize = \"pad\"\n", "pool = \"mean\"\n");
  EXPECT_EQ(fact<std::int64_t>(o, "image_size"), 16);
  EXPECT_EQ(fact<std::int64_t>(o, "native_image_size"), 12);
  EXPECT_EQ(fact<std::int64_t>(o, "grid"), 4);
  EXPECT_EQ(fact<std::string>(o, "resize"), "pad");
  EXPECT_EQ(fact<std::string>(o, "pool"), "mean");
  const auto pos = std::find_if(o.params.begin(), o.params.end(), [](const auto& p) { return p.first == "pos_embed"; });
  ASSERT_NE(pos, o.params.end());
  EXPECT_EQ(pos->second.shape(), (Shape{1, 1 + 4 * 4, 16}));
  fs::remove_all(data);
}

// Weight decay reaches the weight matrices and the patch projection only: every bias (attention's
// packed in_proj_bias too), norm, position embedding and class token matches a no-decay pattern.
TEST(ViTTask, NoBiasNormOrEmbeddingIsDecayed) {
  const fs::path data = idx_folder("no_decay");
  Generator init(1), dropout(2);
  train::Config c = train::Config::parse(tiny_config(data), "decay.toml");
  ViTTask task(c, {7, &init, &dropout});
  const auto patterns = task.no_decay_patterns();
  const auto undecayed = [&](const std::string& name) {
    return std::any_of(patterns.begin(), patterns.end(), [&](const auto& p) { return optim::glob_match(p, name); });
  };
  int decayed = 0;
  for (const auto& [name, p] : task.model().named_parameters()) {
    const bool one_dim = p.dim() <= 1 || name == "pos_embed" || name == "cls_token";
    EXPECT_EQ(undecayed(name), one_dim) << name;
    decayed += !undecayed(name);
  }
  EXPECT_GT(decayed, 0);
  fs::remove_all(data);
}

}  // namespace
}  // namespace rune::examples
