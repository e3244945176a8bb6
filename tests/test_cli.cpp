// End to end through the real `rune` binary: train a tiny model, check the files a user looks at,
// resume in a fresh process bit for bit, Ctrl-C saves and resumes, a NaN loss stops the run,
// config errors name the file and key, and info / eval read the checkpoints.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "autograd/ops.hpp"
#include "tests/helpers.hpp"
#include "train/checkpoint.hpp"
#include "train/metrics_log.hpp"

namespace rune {
namespace {

namespace fs = std::filesystem;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A scratch folder holding the tiny reverse config (tests/helpers.hpp) as tiny.toml.
std::string workspace(const std::string& name) { return tiny_reverse_workspace("cli_" + name); }

std::map<std::string, std::vector<double>> parameters(const std::string& path) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : train::read_checkpoint(path).params) {
    const Tensor c = to_dtype(t, DType::float64).contiguous();
    out[name] = std::vector<double>(c.data<double>(), c.data<double>() + c.numel());
  }
  return out;
}

TEST(Cli, TrainWritesTheRunFolderAndInfoAndEvalReadIt) {
  const std::string dir = workspace("train");
  const RunResult r = run_rune("train tiny.toml --no-progress", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("epoch 2/2 step 8/8"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("val exact_match"), std::string::npos) << r.output;
  const std::string run = dir + "/runs/tiny";
  for (const char* f : {"config.toml", "metrics.jsonl", "curves.png", "checkpoints/last.h5", "checkpoints/best.h5",
                        "checkpoints/step-000008.h5"})
    EXPECT_TRUE(fs::exists(run + "/" + f)) << f;
  // the resolved config holds the defaults too
  const std::string config = read(run + "/config.toml");
  EXPECT_NE(config.find("optimizer = 'adamw'"), std::string::npos) << config;
  EXPECT_NE(config.find("d_model = 16"), std::string::npos) << config;
  // eight training records and two validation records, with the documented fields
  const std::string log = read(run + "/metrics.jsonl");
  std::size_t train_lines = 0, val_lines = 0;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"val_exact_match\"") != std::string::npos) ++val_lines;
    if (line.find("\"grad_norm\"") != std::string::npos && line.find("\"items_per_s\"") != std::string::npos &&
        line.find("\"lr\"") != std::string::npos)
      ++train_lines;
  }
  EXPECT_EQ(train_lines, 8u) << log;
  EXPECT_EQ(val_lines, 2u) << log;
  EXPECT_EQ(read(run + "/curves.png").substr(1, 3), "PNG");
  const train::Checkpoint c = train::read_checkpoint(run + "/checkpoints/last.h5");
  EXPECT_EQ(c.step, 8);
  EXPECT_EQ(c.optimizer, "AdamW");
  EXPECT_TRUE(c.metrics.count("val_exact_match"));
  EXPECT_EQ(c.meta_strings.at("vocabulary").size(), 13u);
  EXPECT_NE(c.config.find("[model]"), std::string::npos);

  const RunResult i = run_rune("info runs/tiny/checkpoints/last.h5", dir);
  ASSERT_EQ(i.status, 0) << i.output;
  EXPECT_NE(i.output.find("step 8, epoch 2, optimizer AdamW"), std::string::npos) << i.output;
  EXPECT_NE(i.output.find("transformer.encoder.layers.0.self_attn.in_proj_weight"), std::string::npos) << i.output;
  EXPECT_NE(i.output.find("total"), std::string::npos) << i.output;
  // how to compute with the parameters (docs/checkpoints.md)
  for (const char* fact : {"architecture:", "model = \"seq2seq_transformer\"", "norm_first = 1",
                           "layer_norm_eps = 1e-05", "embedding_scale = 4\n", "source_framing = \"tokens\""})
    EXPECT_NE(i.output.find(fact), std::string::npos) << fact << "\n" << i.output;
  // the reverse task translates digit sequences; --scores adds log P(translation | source)
  const RunResult tr = run_rune("translate runs/tiny/checkpoints/last.h5 '3 1 4' '2 7' --scores", dir);
  ASSERT_EQ(tr.status, 0) << tr.output;
  EXPECT_NE(tr.output.find("3 1 4 -> "), std::string::npos) << tr.output;
  EXPECT_NE(tr.output.find("2 7 -> "), std::string::npos) << tr.output;
  EXPECT_LT(std::stod(tr.output.substr(tr.output.find('\t') + 1)), 0.0) << tr.output;
  // a task without ONNX export says so, and which tasks have it
  const RunResult onnx = run_rune("export runs/tiny/checkpoints/last.h5 --onnx tiny.onnx", dir);
  EXPECT_EQ(onnx.status, 1) << onnx.output;
  EXPECT_EQ(onnx.output,
            "rune: checkpoint runs/tiny/checkpoints/last.h5 holds a 'reverse' task, which cannot export to ONNX (tasks "
            "that can: cnn, translation, vit)\n");
  EXPECT_FALSE(fs::exists(dir + "/tiny.onnx"));
  const RunResult bad = run_rune("translate runs/tiny/checkpoints/last.h5 'three'", dir);
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("'three' in 'three' is not a digit 0..9"), std::string::npos) << bad.output;
  const RunResult e = run_rune("eval runs/tiny/checkpoints/best.h5 --split test", dir);
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("exact_match"), std::string::npos) << e.output;
  EXPECT_TRUE(fs::exists(run + "/eval-test.json"));
  // an override the command does not read is refused by name, before any work
  const RunResult typo = run_rune("eval runs/tiny/checkpoints/best.h5 --set data.eval_sise=10", dir);
  EXPECT_EQ(typo.status, 1) << typo.output;
  EXPECT_NE(typo.output.find("unknown key data.eval_sise (did you mean data.eval_size?)"), std::string::npos)
      << typo.output;
  // a model too large for the machine, from a checkpoint's config, is refused before it is built
  const RunResult huge = run_rune("eval runs/tiny/checkpoints/best.h5 --set model.d_model=1000000000", dir);
  EXPECT_EQ(huge.status, 1) << huge.output;
  EXPECT_NE(huge.output.find("rune: runs/tiny/checkpoints/best.h5 (its config) (--set): model.d_model = 1000000000: "
                             "the model's "),
            std::string::npos)
      << huge.output;
  const RunResult unread = run_rune("heads runs/tiny/checkpoints/best.h5 --no-progress --set train.lr=1", dir);
  EXPECT_EQ(unread.status, 1) << unread.output;
  EXPECT_NE(unread.output.find("unknown key train.lr"), std::string::npos) << unread.output;
  // a second run of the same config gets its own folder
  ASSERT_EQ(run_rune("train tiny.toml --no-progress --set train.epochs=1", dir).status, 0);
  EXPECT_TRUE(fs::exists(dir + "/runs/tiny-2/checkpoints/last.h5"));
  fs::remove_all(dir);
}

TEST(Cli, ResumeInAFreshProcessIsBitIdentical) {
  const std::string dir = workspace("resume");
  ASSERT_EQ(run_rune("train tiny.toml --no-progress --set run.name=straight", dir).status, 0);
  ASSERT_EQ(run_rune("train tiny.toml --no-progress --set run.name=split --set train.epochs=1", dir).status, 0);
  const RunResult r = run_rune("train --no-progress --resume runs/split/checkpoints/last.h5 --set train.epochs=2", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resuming at step 4"), std::string::npos) << r.output;
  EXPECT_EQ(parameters(dir + "/runs/straight/checkpoints/last.h5"),
            parameters(dir + "/runs/split/checkpoints/last.h5"));
  // the resumed log continues the first part's: steps 1..8, once each
  std::map<int, int> training_records;  // step -> count
  for (const train::MetricsRecord& rec : train::read_metrics_log(dir + "/runs/split/metrics.jsonl"))
    if (rec.count("loss")) ++training_records[static_cast<int>(rec.at("step"))];
  for (int s = 1; s <= 8; ++s) EXPECT_EQ(training_records[s], 1) << s;
  EXPECT_EQ(training_records.size(), 8u);
  fs::remove_all(dir);
}

TEST(Cli, CtrlCSavesACheckpointThatResumes) {
  const std::string dir = workspace("interrupt");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    std::FILE* log = std::freopen("interrupted.log", "w", stderr);  // keep the test's output clean
    (void)log;
    ::execl(RUNE_BINARY, RUNE_BINARY, "train", "tiny.toml", "--no-progress", "--set", "train.epochs=100000", nullptr);
    ::_exit(127);
  }
  // wait for the first validation checkpoint, then interrupt
  for (int i = 0; i < 600 && !fs::exists(dir + "/runs/tiny/checkpoints/step-000004.h5"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::kill(child, SIGINT);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  const train::Checkpoint c = train::read_checkpoint(dir + "/runs/tiny/checkpoints/last.h5");
  EXPECT_GE(c.step, 4);
  // the command it prints is all it takes to go on, with the run's own config
  const std::string said = read(dir + "/interrupted.log");
  const std::string command = "rune train --resume runs/tiny/checkpoints/last.h5";
  EXPECT_NE(said.find("continue with: " + command + "\n"), std::string::npos) << said;
  std::ofstream(dir + "/tiny.toml") << "seed = 4\n";  // the config file has no say any more
  const std::string training = "--no-progress --set train.epochs=" + std::to_string(c.step / 4 + 1);
  const RunResult r = run_rune(command.substr(5) + " " + training, dir);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resuming at step " + std::to_string(c.step)), std::string::npos) << r.output;
  EXPECT_NE(read(dir + "/runs/tiny/config.toml").find("seed = 3"), std::string::npos);
  fs::remove_all(dir);
}

// Every file of a folder and its content, to show that a refused command changed nothing.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[e.path().string()] = read(e.path().string());
  return files;
}

TEST(Cli, AResumeChangesOnlyWhatMayChangeMidRunAndNothingOnDiskUntilChecked) {
  const std::string dir = workspace("resume_story");
  ASSERT_EQ(run_rune("train tiny.toml --no-progress --set train.epochs=1", dir).status, 0);
  const std::string last = "runs/tiny/checkpoints/last.h5";
  const auto before = snapshot(dir + "/runs");
  const auto refused = [&](const std::string& args, const std::string& says) {
    const RunResult r = run_rune("train --no-progress " + args, dir);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(says), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(snapshot(dir + "/runs"), before) << args << ": a refused resume changed the run folder";
  };
  refused("--resume " + last + " --set model.d_model=64 --set train.epochs=2",
          "--set model.d_model=64: model.d_model cannot change when a run resumes (keys that can: train.epochs, ");
  refused("--resume " + last + " --set data.batch_size=4", "data.batch_size cannot change when a run resumes");
  refused("tiny.toml --resume " + last, "leave out tiny.toml");
  refused("--resume " + last, "is at step 4, and the run ends at step 4 (train.epochs = 1): nothing is left to train");
  refused("--resume " + last + " --set train.epochs=0", "train.epochs");
  {  // a damaged checkpoint: refused before anything is written
    fs::copy_file(dir + "/" + last, dir + "/runs/tiny/checkpoints/damaged.h5");
    std::fstream io(dir + "/runs/tiny/checkpoints/damaged.h5", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(2000);
    io.put('\x01');
  }
  const auto with_damaged = snapshot(dir + "/runs");
  const RunResult damaged = run_rune("train --no-progress --resume runs/tiny/checkpoints/damaged.h5", dir);
  EXPECT_EQ(damaged.status, 1) << damaged.output;
  EXPECT_NE(damaged.output.find("damaged.h5 is refused"), std::string::npos) << damaged.output;
  EXPECT_EQ(snapshot(dir + "/runs"), with_damaged);
  fs::remove(dir + "/runs/tiny/checkpoints/damaged.h5");

  // a damaged best.h5 does not stop the run going on from a good last.h5
  {
    std::fstream io(dir + "/runs/tiny/checkpoints/best.h5", std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(2000);
    io.put('\x01');
  }
  const RunResult r = run_rune("train --no-progress --resume " + last + " --set train.epochs=2", dir);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("best.h5 is refused"), std::string::npos) << r.output;
  EXPECT_EQ(train::read_checkpoint(dir + "/" + last).step, 8);
  EXPECT_EQ(train::read_checkpoint(dir + "/runs/tiny/checkpoints/best.h5").step, 8);
  EXPECT_NE(read(dir + "/runs/tiny/config.toml").find("epochs = 2"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Cli, ANonFiniteLossStopsTheRunAndKeepsTheLastGoodCheckpoint) {
  const std::string dir = workspace("nan");
  ASSERT_EQ(run_rune("train tiny.toml --no-progress --set train.epochs=1", dir).status,
            0);  // a good checkpoint at step 4
  const auto good = parameters(dir + "/runs/tiny/checkpoints/last.h5");
  // then a learning rate that blows the weights up within a step or two
  const RunResult r = run_rune(
      "train --no-progress --set train.lr=1e30 --set train.clip_norm=0 --set train.epochs=2 "
      "--resume runs/tiny/checkpoints/last.h5",
      dir);
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("stopping. The last good checkpoint is runs/tiny/checkpoints/last.h5"), std::string::npos)
      << r.output;
  EXPECT_EQ(train::read_checkpoint(dir + "/runs/tiny/checkpoints/last.h5").step, 4);
  EXPECT_EQ(parameters(dir + "/runs/tiny/checkpoints/last.h5"), good) << "the last good checkpoint is untouched";
  fs::remove_all(dir);
}

TEST(Cli, TranslateAndAttentionMapsOfATranslationModel) {
  const std::string dir = workspace("translation");
  std::ofstream(dir + "/numbers.toml") << R"(seed = 1
[task]
name = "translation"
[data]
batch_size = 16
batches_per_epoch = 6
eval_size = 16
[model]
d_model = 16
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 2
dim_feedforward = 32
[train]
epochs = 1
)";
  ASSERT_EQ(run_rune("train numbers.toml --no-progress", dir).status, 0);
  const std::string ckpt = "runs/numbers/checkpoints/last.h5";
  RunResult r = run_rune("translate " + ckpt + " 'seventy-one' 'two hundred'", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("seventy-one -> "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("two hundred -> "), std::string::npos) << r.output;
  r = run_rune("translate " + ckpt + " 'seventy-one' --scores", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::size_t tab = r.output.find('\t');
  ASSERT_NE(tab, std::string::npos) << r.output;
  EXPECT_LT(std::stod(r.output.substr(tab + 1)), 0.0) << "a log-probability";
  r = run_rune("attention " + ckpt + " 'eighty thousand' --out maps", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read(dir + "/maps/multi_head_attention_map.png").substr(1, 3), "PNG");
  // one CSV row per (module, head, query, key): encoder self 1 layer, decoder self and cross 2 layers
  const std::string csv = read(dir + "/maps/attention_weights.csv");
  EXPECT_EQ(csv.rfind("kind,layer,head,query,query_token,key,key_token,weight", 0), 0u);
  EXPECT_NE(csv.find("\"cross\",1,1,"), std::string::npos);
  EXPECT_NE(csv.find("\"encoder self\",0,0,0,\"eighty\""), std::string::npos) << csv.substr(0, 300);
  // head analysis: a report in the run folder, a summary with every module, pruning counts
  r = run_rune("heads " + ckpt + " --prune --no-progress --split val", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s :
       {"val split, 16 examples", "encoder.0.self_attn", "decoder.1.self_attn", "decoder.1.multihead_attn",
        "heads can go before exact_match drops", "heads can go before bleu drops"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  for (const char* f : {"heads.md", "heads.csv", "redundancy.csv", "head_patterns.png", "head_importance.png",
                        "pruning.csv", "pruning.png"})
    EXPECT_TRUE(fs::exists(dir + "/runs/numbers/heads-val/" + f)) << f;
  r = run_rune("heads " + ckpt + " --split train", dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--split"), std::string::npos) << r.output;
  r = run_rune("attention runs/none.h5 x", dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("runs/none.h5"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

// DropHead from the config: it changes training (the parameters differ from a run without it),
// and its keys are checked like any other.
TEST(Cli, DropHeadIsAConfigOption) {
  const std::string dir = workspace("drophead");
  ASSERT_EQ(run_rune("train tiny.toml --no-progress --set run.name=plain", dir).status, 0);
  const RunResult r = run_rune(
      "train tiny.toml --no-progress --set run.name=drophead --set train.drophead=0.3 "
      "--set train.drophead_schedule=scheduled --set train.drophead_warmup_steps=3",
      dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(parameters(dir + "/runs/plain/checkpoints/last.h5"),
            parameters(dir + "/runs/drophead/checkpoints/last.h5"));
  EXPECT_NE(read(dir + "/runs/drophead/config.toml").find("drophead_schedule = 'scheduled'"), std::string::npos);
  RunResult e = run_rune("train tiny.toml --set train.drophead=1", dir);
  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.output.find("train.drophead: 1 is outside [0, 1)"), std::string::npos) << e.output;
  e = run_rune(
      "train tiny.toml --set train.drophead=0.1 --set train.drophead_schedule=scheduled "
      "--set train.drophead_warmup_steps=8",
      dir);
  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.output.find("train.drophead_warmup_steps"), std::string::npos) << e.output;
  e = run_rune("train tiny.toml --set train.drophead_schedule=v", dir);
  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.output.find("train.drophead_schedule"), std::string::npos) << e.output;
}

// What a hostile user tries: sizes beyond the machine, values that are no TOML value, ranges
// without a bound on one side, a key of another optimizer, an empty config. Each is refused with
// exit code 1 by a message that names the key (or the file) and what is wrong, before any work.
TEST(Cli, ImpossibleConfigsAreRefusedByNameBeforeAnyWork) {
  const std::string dir = workspace("refused");
  std::ofstream(dir + "/empty.toml") << "# nothing yet\n";
  const std::vector<std::pair<std::string, std::string>> cases{
      {"train tiny.toml --set model.d_model=1000000000",
       "rune: tiny.toml (--set): model.d_model = 1000000000: the model's "},
      {"train tiny.toml --set data.batch_size=100000000",
       "rune: tiny.toml (--set): data.batch_size = 100000000: a training batch's activations (about "},
      {"train tiny.toml --set data.eval_size=1000000000",
       "rune: tiny.toml (--set): data.eval_size = 1000000000: an evaluation batch's activations"},
      {"train tiny.toml --set model.d_model=12x", "rune: tiny.toml (--set): model.d_model: 12x is not a TOML value"},
      {"train tiny.toml --set 'train.lr=['", "rune: tiny.toml (--set): train.lr: [ is not a TOML value"},
      {"train tiny.toml --set seed=99999999999999999999999",
       "rune: tiny.toml (--set): seed: 99999999999999999999999: the integer does not fit in 64 bits"},
      {"train tiny.toml --set data.eval_size=0",
       "rune: tiny.toml (--set): data.eval_size: 0 is too small: must be at least 1"},
      {"train tiny.toml --set train.momentum=0.5",
       "tiny.toml (--set): train.momentum is read only when train.optimizer = \"sgd\" (here \"adamw\")"},
      {"train empty.toml",
       "rune: config empty.toml sets no key; name at least the task (task.name = \"translation\"); rune config "
       "lists every key"},
  };
  for (const auto& [args, want] : cases) {
    const RunResult r = run_rune(args, dir);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(want), std::string::npos) << args << "\n" << r.output;
    if (r.output.find("would need") != std::string::npos) {
      EXPECT_TRUE(r.output.find("; this machine has ") != std::string::npos ||
                  r.output.find("; this process may use ") != std::string::npos)
          << r.output;
    }
  }
  EXPECT_FALSE(fs::exists(dir + "/runs")) << "no run folder for a refused config";
  fs::remove_all(dir);
}

TEST(Cli, ConfigAndUsageErrorsNameTheProblem) {
  const std::string dir = workspace("errors");
  RunResult r = run_rune("train tiny.toml --set model.d_modle=32", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("unknown key model.d_modle (did you mean model.d_model?)"), std::string::npos) << r.output;
  r = run_rune("train tiny.toml --set model.nhead=3", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("model.nhead: 3 does not divide model.d_model 16"), std::string::npos) << r.output;
  r = run_rune("train tiny.toml --set model.dropout=1.5", dir);
  EXPECT_NE(r.output.find("model.dropout: 1.5 is outside [0, 1)"), std::string::npos) << r.output;
  // run.name is one folder inside run.dir: nothing escapes it, and no name is empty
  for (const char* name :
       {"'run.name=\"\"'", "run.name=../escaped", "run.name=/tmp/rune-absolute", "run.name=.hidden"}) {
    r = run_rune(std::string("train tiny.toml --set ") + name, dir);
    EXPECT_EQ(r.status, 1) << name;
    EXPECT_NE(r.output.find("run.name"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("is not a folder name"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(dir + "/escaped"));
  EXPECT_FALSE(fs::exists("/tmp/rune-absolute"));
  r = run_rune("train missing.toml", dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("missing.toml"), std::string::npos) << r.output;
  std::ofstream(dir + "/bad.h5") << "not hdf5";
  r = run_rune("info bad.h5", dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("checkpoint bad.h5 is refused"), std::string::npos) << r.output;
  r = run_rune("--help", dir);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("train"), std::string::npos);
  r = run_rune("train --help", dir);
  EXPECT_NE(r.output.find("--resume"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

// Evaluation that comes out non-finite is a failure (exit 3), not a report: parameters near
// float's largest (finite, so the checkpoint loads) overflow in the forward pass.
TEST(Cli, EvalOfNonFiniteMetricsFails) {
  const std::string dir = workspace("eval_nan");
  ASSERT_EQ(run_rune("train tiny.toml --no-progress --set train.epochs=1", dir).status, 0);
  train::Checkpoint c = train::read_checkpoint(dir + "/runs/tiny/checkpoints/last.h5");
  for (auto& [name, t] : c.params) t = full(t.shape(), 3e38, t.dtype());
  const std::string huge = "runs/tiny/checkpoints/huge.h5";
  train::save_checkpoint(dir + "/" + huge, c);
  const RunResult r = run_rune("eval " + huge + " --split val", dir);
  EXPECT_EQ(r.status, 3) << r.output;
  EXPECT_NE(r.output.find("rune: the metrics of " + huge + " on the val split are not finite (loss = "),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("the checkpoint's parameters or the data are likely bad"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/runs/tiny/eval-val.json")) << "no report of meaningless numbers";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune
