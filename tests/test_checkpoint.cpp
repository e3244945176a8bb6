// HDF5 checkpoints (train/checkpoint.hpp): a full round trip and its layout on disk, atomic writes
// (a write failing half-way and a writer killed half-way both leave the previous checkpoint
// intact), refusal of corrupt, truncated and foreign files by name, strict and non-strict
// loading, exact resume of training with dropout, and the manager's last / best / keep-N files.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <thread>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/transformer.hpp"
#include "nn/vit.hpp"
#include "optim/adam.hpp"
#include "tests/helpers.hpp"
#include "train/checkpoint.hpp"

namespace rune {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test under the build's temp dir.
std::string scratch(const std::string& name) { return scratch_dir("checkpoint_" + name).string(); }

nn::TransformerLayerOptions layer_options(double dropout = 0.0) {
  nn::TransformerLayerOptions o;
  o.d_model = 16;
  o.nhead = 4;
  o.dim_feedforward = 32;
  o.dropout = dropout;
  return o;
}

train::Checkpoint sample_checkpoint(const nn::Module& model, const optim::Optimizer& opt) {
  train::Checkpoint c;
  c.params = model.named_parameters();
  c.optimizer_state = opt.state();
  c.optimizer = opt.name();
  c.optimizer_steps = opt.steps();
  c.epoch = 3;
  c.step = 120;
  c.rng = {{"dropout", Generator(5).state()}, {"data", Generator(6).state()}};
  c.metrics = {{"val_loss", 0.25}, {"exact_match", 0.875}};
  c.config = "{\"model\": {\"d_model\": 16}}";
  c.meta_strings = {{"vocabulary", {"<pad>", "<bos>", "soixante", "cent", "été"}}};
  c.meta_numbers = {{"image_size", {32, 32}}, {"mean", {0.4914, 0.4822, 0.4465}}};
  c.meta_bytes = {{"subwords", std::string("\x0a\x00\xff model", 9)}, {"empty", ""}};
  c.architecture = {{"norm_first", std::int64_t{1}}, {"layer_norm_eps", 1e-5}, {"activation", std::string("gelu")}};
  return c;
}

// An encoder trained a few steps, so that parameters and optimizer state are not at init.
struct Trained {
  Generator gen{1};
  nn::TransformerEncoder model{layer_options(), 1, true, gen};
  optim::AdamW opt{optim::param_groups_by_weight_decay(model.named_parameters(), 1e-3, 0.01, {"*.bias", "*norm*"})};
  Trained() {
    for (int i = 0; i < 3; ++i) {
      sum(model.forward(randn({2, 3, 16}, gen))).backward();
      opt.step();
      opt.zero_grad();
    }
  }
};

TEST(Checkpoint, RoundTripKeepsEveryFieldAndTheLayoutIsTheNameTree) {
  const std::string dir = scratch("roundtrip");
  Trained t;
  const train::Checkpoint c = sample_checkpoint(t.model, t.opt);
  const std::string path = dir + "/model.h5";
  train::save_checkpoint(path, c);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  const train::Checkpoint r = train::read_checkpoint(path);
  ASSERT_EQ(r.params.size(), c.params.size());
  std::map<std::string, Tensor> by_name(r.params.begin(), r.params.end());
  for (const auto& [name, p] : c.params) {
    ASSERT_TRUE(by_name.count(name)) << name;
    EXPECT_EQ(by_name[name].shape(), p.shape()) << name;
    EXPECT_EQ(values(by_name[name]), values(p)) << name;
  }
  std::map<std::string, Tensor> opt_state(r.optimizer_state.begin(), r.optimizer_state.end());
  for (const auto& [key, s] : c.optimizer_state) {
    ASSERT_TRUE(opt_state.count(key)) << key;
    EXPECT_EQ(opt_state[key].dtype(), s.dtype()) << key;
    EXPECT_EQ(values(opt_state[key]), values(s)) << key;
  }
  EXPECT_EQ(r.optimizer, "AdamW");
  EXPECT_EQ(r.optimizer_steps, 3);
  EXPECT_EQ(r.epoch, 3);
  EXPECT_EQ(r.step, 120);
  EXPECT_EQ(r.rng, c.rng);
  EXPECT_EQ(r.metrics, c.metrics);
  EXPECT_EQ(r.config, c.config);
  EXPECT_EQ(r.meta_strings, c.meta_strings);
  EXPECT_EQ(r.meta_numbers, c.meta_numbers);
  EXPECT_EQ(r.meta_bytes, c.meta_bytes);
  EXPECT_EQ(r.architecture, c.architecture);

  // on disk: name '.' -> '/', float32, exact shape (what h5py and h5ls show)
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t ds = H5Dopen2(f, "params/layers/0/self_attn/in_proj_weight", H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  const hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
  EXPECT_EQ(H5Tget_class(type), H5T_FLOAT);
  EXPECT_EQ(H5Tget_size(type), 4u);
  hsize_t dims[2];
  EXPECT_EQ(H5Sget_simple_extent_dims(space, dims, nullptr), 2);
  EXPECT_EQ(dims[0], 48u);
  EXPECT_EQ(dims[1], 16u);
  EXPECT_GT(H5Lexists(f, "optimizer/layers/0/self_attn/in_proj_weight/exp_avg", H5P_DEFAULT), 0);
  H5Sclose(space);
  H5Tclose(type);
  H5Dclose(ds);
  H5Fclose(f);

  // and the parameters load into a fresh model of the same shape
  Generator other(99);
  nn::TransformerEncoder fresh(layer_options(), 1, true, other);
  train::load_parameters(fresh, r, path);
  for (const auto& [name, p] : t.model.named_parameters()) EXPECT_EQ(values(fresh.parameter(name)), values(p)) << name;
  fs::remove_all(dir);
}

TEST(Checkpoint, AWriteFailingHalfWayLeavesThePreviousFile) {
  const std::string dir = scratch("failed_write");
  Trained t;
  const std::string path = dir + "/last.h5";
  train::save_checkpoint(path, sample_checkpoint(t.model, t.opt));
  const std::vector<double> before = values(train::read_checkpoint(path).params.front().second);
  train::Checkpoint bad = sample_checkpoint(t.model, t.opt);
  bad.step = 999;
  bad.optimizer_state.emplace_back("layers.0.linear1.weight/flags",
                                   zeros({3}, DType::bool_));  // fails after the params
  const std::string e = error_of([&] { train::save_checkpoint(path, bad); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(path + ".tmp")) << "the half-written file is removed";
  const train::Checkpoint r = train::read_checkpoint(path);
  EXPECT_EQ(r.step, 120) << "the previous checkpoint is still the one on disk";
  EXPECT_EQ(values(r.params.front().second), before);
  fs::remove_all(dir);
}

TEST(Checkpoint, AWriterKilledHalfWayLeavesAReadableCheckpoint) {
  const std::string dir = scratch("killed_writer");
  const std::string path = dir + "/last.h5";
  train::Checkpoint c;
  c.params = {{"w", full({8}, 1.0)}};
  c.step = 1;
  train::save_checkpoint(path, c);
  train::Checkpoint big;  // built before the fork: the child only writes (no OpenMP after fork)
  big.params = {{"w", full({8}, 2.0)}, {"big", zeros({4'000'000})}};
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // keep rewriting a 16 MB checkpoint until killed
    for (std::int64_t s = 2;; ++s) {
      big.step = s;
      train::save_checkpoint(path, big);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  const bool mid_write = fs::exists(path + ".tmp");
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  // whatever moment it died, `path` holds a complete checkpoint: the first or one of the big ones
  const train::Checkpoint r = train::read_checkpoint(path);
  EXPECT_GE(r.step, 1);
  std::map<std::string, Tensor> params(r.params.begin(), r.params.end());
  EXPECT_EQ(values(params.at("w")), std::vector<double>(8, r.step == 1 ? 1.0 : 2.0));
  if (r.step > 1) {
    EXPECT_EQ(params.at("big").numel(), 4'000'000);
  }
  std::printf("killed %s; the checkpoint on disk is from step %lld\n",
              mid_write ? "while a write was under way" : "between writes", static_cast<long long>(r.step));
  fs::remove_all(dir);
}

TEST(Checkpoint, CorruptTruncatedAndForeignFilesAreRefusedByName) {
  const std::string dir = scratch("corrupt");
  Trained t;
  const std::string good = dir + "/good.h5";
  train::save_checkpoint(good, sample_checkpoint(t.model, t.opt));

  // one flipped byte anywhere (a parameter's data, the config, the SHA-256 line itself) is refused
  // before HDF5 reads the file
  haddr_t address = 0;
  {
    const hid_t f = H5Fopen(good.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t ds = H5Dopen2(f, "params/layers/0/linear1/weight", H5P_DEFAULT);
    address = H5Dget_offset(ds);
    ASSERT_NE(address, HADDR_UNDEF);
    H5Dclose(ds);
    H5Fclose(f);
  }
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::size_t config_at = bytes.find(sample_checkpoint(t.model, t.opt).config);
  ASSERT_NE(config_at, std::string::npos);
  for (const std::size_t at : {static_cast<std::size_t>(address) + 100, config_at + 3, bytes.size() - 10}) {
    const std::string flipped = dir + "/flipped.h5";
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x5a);
    std::ofstream(flipped, std::ios::binary) << damaged;
    const std::string e = error_of([&] { train::read_checkpoint(flipped); });
    EXPECT_NE(e.find(flipped + " is refused"), std::string::npos) << "byte " << at << ": " << e;
    EXPECT_NE(e.find("SHA-256"), std::string::npos) << "byte " << at << ": " << e;
  }

  const std::string truncated = dir + "/truncated.h5";
  fs::copy_file(good, truncated);
  fs::resize_file(truncated, fs::file_size(good) / 2);
  std::string e = error_of([&] { train::read_checkpoint(truncated); });
  EXPECT_NE(e.find(truncated), std::string::npos) << e;
  EXPECT_NE(e.find("refused"), std::string::npos) << e;

  const std::string foreign = std::string(RUNE_PARITY_DIR) + "/linear.h5";  // HDF5, but not ours
  e = error_of([&] { train::read_checkpoint(foreign); });
  EXPECT_NE(e.find("does not end in its SHA-256 line"), std::string::npos) << e;

  const std::string text = dir + "/notes.txt";
  std::ofstream(text) << "not a checkpoint\n";
  e = error_of([&] { train::read_checkpoint(text); });
  EXPECT_NE(e.find("not an HDF5 file"), std::string::npos) << e;
  e = error_of([&] { train::read_checkpoint(dir + "/missing.h5"); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(Checkpoint, LoadingIsStrictByDefaultAndNonStrictForFineTuning) {
  Generator g(2);
  nn::VisionTransformerOptions o;
  o.image_size = 8;
  o.patch_size = 4;
  o.in_chans = 1;
  o.embed_dim = 8;
  o.depth = 1;
  o.num_heads = 2;
  o.mlp_dim = 16;
  o.num_classes = 10;
  const nn::VisionTransformer pretrained(o, g);
  train::Checkpoint c;
  c.params = pretrained.named_parameters();
  const std::string path = "pretrained.h5";
  o.num_classes = 3;  // a new head
  nn::VisionTransformer tuned(o, g);
  const std::string e = error_of([&] { train::load_parameters(tuned, c, path); });
  EXPECT_NE(e.find("checkpoint pretrained.h5 does not fit the model"), std::string::npos) << e;
  EXPECT_NE(e.find("head.weight: [10,8] given, [3,8] expected"), std::string::npos) << e;
  EXPECT_NE(e.find("head.bias"), std::string::npos) << e;
  const std::vector<double> head_before = values(tuned.head->weight);
  const nn::LoadReport r = train::load_parameters(tuned, c, path, /*strict=*/false);
  EXPECT_EQ(r.mismatched.size(), 2u);
  EXPECT_TRUE(r.missing.empty() && r.unexpected.empty());
  EXPECT_EQ(values(tuned.pos_embed), values(pretrained.pos_embed));
  EXPECT_EQ(values(tuned.head->weight), head_before) << "mis-shaped entries are left alone";
}

// Training 2N steps straight equals N steps, a checkpoint, a fresh model and optimizer loaded
// from it, and N more: bit for bit, with dropout drawing from a generator saved in the file.
TEST(Checkpoint, ResumeIsExactWithDropout) {
  const std::string dir = scratch("resume");
  const auto batch = [](std::int64_t step) {
    Generator data(1000 + static_cast<std::uint64_t>(step));  // the data order depends on the step only
    return randn({2, 4, 16}, data);
  };
  struct Run {
    Generator init, dropout;
    nn::TransformerEncoder model;
    optim::AdamW opt;
    explicit Run(std::uint64_t seed)
        : init(seed),
          dropout(seed + 1),
          model(with_generator(&dropout), 2, true, init),
          opt(optim::param_groups_by_weight_decay(model.named_parameters(), 1e-3, 0.01, {"*.bias"})) {}
    static nn::TransformerLayerOptions with_generator(Generator* g) {
      nn::TransformerLayerOptions o = layer_options(0.2);
      o.dropout_generator = g;
      return o;
    }
    void train(std::int64_t from, std::int64_t to, const std::function<Tensor(std::int64_t)>& data) {
      for (std::int64_t s = from; s < to; ++s) {
        sum(model.forward(data(s)) * model.forward(data(s))).backward();
        opt.step();
        opt.zero_grad();
      }
    }
  };
  Run straight(7);
  straight.train(0, 6, batch);

  Run first(7);
  first.train(0, 3, batch);
  train::Checkpoint c;
  c.params = first.model.named_parameters();
  c.optimizer_state = first.opt.state();
  c.optimizer = first.opt.name();
  c.optimizer_steps = first.opt.steps();
  c.step = 3;
  c.rng["dropout"] = first.dropout.state();
  train::save_checkpoint(dir + "/ck.h5", c);

  Run second(12345);  // another init and another dropout stream, all replaced by the checkpoint
  const train::Checkpoint r = train::read_checkpoint(dir + "/ck.h5");
  train::load_parameters(second.model, r, dir + "/ck.h5");
  second.opt.load_state(r.optimizer_state, r.optimizer_steps);
  second.dropout.set_state(r.rng.at("dropout"));
  second.train(r.step, 6, batch);
  for (const auto& [name, p] : straight.model.named_parameters())
    EXPECT_EQ(values(second.model.parameter(name)), values(p)) << name;
  fs::remove_all(dir);
}

TEST(Checkpoint, ManagerKeepsTheLastNAndTheBest) {
  const std::string dir = scratch("manager");
  train::CheckpointManager m(dir, 2, "exact_match", /*higher_is_better=*/true);
  for (std::int64_t step : {10, 20, 30, 40}) {
    train::Checkpoint c;
    c.params = {{"w", full({2}, static_cast<double>(step))}};
    c.step = step;
    c.metrics["exact_match"] = step == 20 ? 0.9 : 0.5;
    m.save(c);
  }
  EXPECT_FALSE(fs::exists(dir + "/step-000010.h5"));
  EXPECT_FALSE(fs::exists(dir + "/step-000020.h5"));
  EXPECT_TRUE(fs::exists(dir + "/step-000030.h5"));
  EXPECT_TRUE(fs::exists(dir + "/step-000040.h5"));
  EXPECT_EQ(train::read_checkpoint(dir + "/last.h5").step, 40);
  EXPECT_EQ(train::read_checkpoint(dir + "/best.h5").step, 20);
  // a manager over the same folder (a resumed run) knows the files and the best so far
  train::CheckpointManager resumed(dir, 2, "exact_match", true);
  EXPECT_TRUE(resumed.has_best());
  EXPECT_DOUBLE_EQ(resumed.best_value(), 0.9);
  train::Checkpoint c;
  c.params = {{"w", full({2}, 50.0)}};
  c.step = 50;
  c.metrics["exact_match"] = 0.7;
  resumed.save(c);
  EXPECT_FALSE(fs::exists(dir + "/step-000030.h5"));
  EXPECT_EQ(train::read_checkpoint(dir + "/best.h5").step, 20);
  fs::remove_all(dir);
}

TEST(Checkpoint, ManagerKeepsTheLaterOfEqualCheckpoints) {
  for (const bool higher : {true, false}) {
    const std::string dir = scratch(higher ? "ties-higher" : "ties-lower");
    train::CheckpointManager m(dir, 2, "metric", higher);
    // (step, metric): the best value first reached at step 20, reached again at 40, lost at 50
    const double best = higher ? 1.0 : 0.1, worse = higher ? 0.9 : 0.2;
    for (const auto& [step, value] :
         std::vector<std::pair<std::int64_t, double>>{{10, worse}, {20, best}, {30, worse}, {40, best}, {50, worse}}) {
      train::Checkpoint c;
      c.params = {{"w", full({2}, static_cast<double>(step))}};
      c.step = step;
      c.metrics["metric"] = value;
      m.save(c);
    }
    EXPECT_EQ(train::read_checkpoint(dir + "/best.h5").step, 40) << (higher ? "higher" : "lower") << " is better";
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace rune

namespace rune {
namespace {

TEST(Checkpoint, AManagerOverAKilledRunsFolderClearsItsLeftoversAndSurvivesABadBest) {
  const std::string dir = scratch("leftovers");
  {
    train::CheckpointManager m(dir, 2, "exact_match", true);
    for (std::int64_t step : {1, 2}) {
      train::Checkpoint c;
      c.params = {{"w", full({2}, static_cast<double>(step))}};
      c.step = step;
      c.metrics["exact_match"] = 0.5;
      m.save(c);
    }
  }
  // a run killed between a numbered save and its pruning, and during another save; best.h5 damaged
  fs::copy_file(dir + "/step-000002.h5", dir + "/step-000003.h5");
  std::ofstream(dir + "/step-000004.h5.tmp") << "half a checkpoint";
  std::ofstream(dir + "/last.h5.tmp") << "half a checkpoint";
  {
    std::fstream io(dir + "/best.h5", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(40);
    io.put('\x7f');
  }
  train::CheckpointManager resumed(dir, 2, "exact_match", true);
  EXPECT_FALSE(fs::exists(dir + "/step-000004.h5.tmp"));
  EXPECT_FALSE(fs::exists(dir + "/last.h5.tmp"));
  EXPECT_FALSE(fs::exists(dir + "/step-000001.h5"));
  EXPECT_TRUE(fs::exists(dir + "/step-000002.h5"));
  EXPECT_TRUE(fs::exists(dir + "/step-000003.h5"));
  EXPECT_FALSE(resumed.has_best());
  ASSERT_EQ(resumed.notes().size(), 1u);
  EXPECT_NE(resumed.notes()[0].find(dir + "/best.h5 is refused"), std::string::npos) << resumed.notes()[0];
  train::Checkpoint c;
  c.params = {{"w", full({2}, 5.0)}};
  c.step = 5;
  c.metrics["exact_match"] = 0.25;
  resumed.save(c);
  EXPECT_EQ(train::read_checkpoint(dir + "/best.h5").step, 5);
  fs::remove_all(dir);
}

TEST(Checkpoint, ParametersThatAreNotFiniteAreRefusedByName) {
  Generator gen(3);
  nn::TransformerEncoder model{layer_options(), 1, true, gen};
  train::Checkpoint c;
  c.params = model.named_parameters();
  for (auto& [name, t] : c.params)
    if (name == "layers.0.linear2.weight") {
      t = t.detach().clone();
      t.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
      t.data<float>()[5] = std::numeric_limits<float>::infinity();
    }
  const std::string e = error_of([&] { train::load_parameters(model, c, "bad.h5"); });
  EXPECT_NE(e.find("bad.h5 is refused: parameter layers.0.linear2.weight holds 2 non-finite values"), std::string::npos)
      << e;
}

// A file too large to read into the memory this process may use is refused by its size, before a
// byte is read (a sparse 6 GiB file under a 4 GiB address-space limit, in a child).
TEST(Checkpoint, AFileLargerThanTheMemoryAvailableIsRefusedBeforeReading) {
  const std::string dir = scratch("huge");
  const std::string path = dir + "/huge.h5";
  std::ofstream(path) << "x";
  fs::resize_file(path, 6ull << 30);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const rlim_t limit = 4ull << 30;
    const rlimit r{limit, limit};
    if (::setrlimit(RLIMIT_AS, &r) != 0) ::_exit(2);
    const std::string e = error_of([&] { train::read_checkpoint(path); });
    ::_exit(e.find(path + " is refused: reading its 6 GiB needs 12 GiB; this process may use 4 GiB") !=
                    std::string::npos
                ? 0
                : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune
