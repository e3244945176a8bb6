// `rune config` (train/config_reference.hpp, cli/config.cpp) cannot drift from the code: every
// key has a description; a default that depends on another key says how; the keys of every
// shipped config and of real runs of each task (read back from the run folder's config.toml) are
// exactly the listed ones; listing reads no data; and docs/config.md is the command's output.
// (The ViT task's real run is in examples/vit/tests/test_vit_config.cpp, with its image files.)
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tests/config_check.hpp"
#include "tests/helpers.hpp"
#include "train/config_reference.hpp"
#include "train/task.hpp"
#include "train/trainer.hpp"

namespace rune {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ConfigReference, EveryKeyHasATypeADefaultAndADescription) {
  const std::set<std::string> types{"integer", "float", "boolean", "string", "strings"};
  ASSERT_FALSE(train::task_names().empty());
  for (const std::string& task : train::task_names()) {
    std::set<std::string> seen;
    for (const train::KeyReference& r : train::config_reference(task)) {
      const std::string where = task + ": " + r.info.key;
      EXPECT_TRUE(seen.insert(r.info.key).second) << where << " is listed twice";
      EXPECT_FALSE(r.info.description.empty()) << where << " has no description";
      EXPECT_TRUE(types.count(r.info.type)) << where << ": type " << r.info.type;
      EXPECT_FALSE(r.info.default_value.empty()) << where;
      // a default that differs between the values of another key is computed: its rule says how
      EXPECT_TRUE(!r.default_varies || !r.info.default_rule.empty())
          << where << ": its default depends on another key; declare it as {value, \"rule\"}";
      for (const train::KeyCondition& c : r.conditions) EXPECT_FALSE(c.values.empty()) << where;
    }
    for (const char* key : {"seed", "task.name", "train.epochs", "train.lr", "run.dir"})
      EXPECT_TRUE(seen.count(key)) << task << " lacks the trainer's " << key;
  }
}

TEST(ConfigReference, KeysOfOneValueOfAnotherKeyAreConditional) {
  std::map<std::string, train::KeyReference> t;
  for (const train::KeyReference& r : train::config_reference("translation")) t.emplace(r.info.key, r);
  const auto condition = [&](const std::string& key) {
    std::string s;
    for (const train::KeyCondition& c : t.at(key).conditions) {
      s += c.key + " =";
      for (const std::string& v : c.values) s += " " + v;
    }
    return s;
  };
  EXPECT_EQ(condition("train.beta1"), "train.optimizer = adamw adam");
  EXPECT_EQ(condition("train.eps"), "train.optimizer = adamw adam");
  EXPECT_EQ(condition("train.momentum"), "train.optimizer = sgd");
  EXPECT_EQ(condition("data.path"), "data.source = tsv");
  EXPECT_EQ(condition("data.split_permille"), "data.source = numbers");
  EXPECT_EQ(condition("model.d_model"), "");
  EXPECT_EQ(condition("train.lr"), "");
  EXPECT_TRUE(t.at("data.path").task_key);
  EXPECT_FALSE(t.at("train.beta1").task_key);
  EXPECT_TRUE(t.at("train.label_smoothing").task_key) << "a task's key in [train] is still the task's";
  EXPECT_EQ(t.at("model.dim_feedforward").info.default_rule, "4 * model.d_model");
  EXPECT_EQ(t.at("model.dim_feedforward").info.default_value, "512");
  // the ViT's defaults that depend on the data set vary, and say so
  std::map<std::string, train::KeyReference> v;
  for (const train::KeyReference& r : train::config_reference("vit")) v.emplace(r.info.key, r);
  for (const char* key : {"data.dir", "data.crop_padding", "data.hflip"}) {
    EXPECT_TRUE(v.at(key).default_varies) << key;
    EXPECT_TRUE(v.at(key).conditions.empty()) << key;
  }
  EXPECT_THROW(train::config_reference("no_such_task"), std::invalid_argument);
}

// Every key listed under a condition, given while the condition does not hold, is named with
// that condition (the task or the trainer declared it with Config::unused_here), not as unknown.
TEST(ConfigReference, KeysOfABranchNotTakenAreNamedWithTheirCondition) {
  std::size_t checked = 0;
  for (const std::string& task : train::task_names())
    for (const train::KeyReference& r : train::config_reference(task)) {
      if (r.conditions.empty()) continue;
      const train::KeyCondition& when = r.conditions.front();
      std::string other;  // a value of the switch under which the key is not read
      for (const train::KeyReference& s : train::config_reference(task))
        if (s.info.key == when.key)
          for (const std::string& v : s.info.choices)
            if (other.empty() && std::find(when.values.begin(), when.values.end(), v) == when.values.end()) other = v;
      ASSERT_FALSE(other.empty()) << task << ": " << r.info.key;
      train::Config c = train::Config::parse("", "branch.toml");
      c.set("task.name=\"" + task + "\"");
      c.set(when.key + "=\"" + other + "\"");
      c.set(r.info.key + "=" + r.info.default_value);
      train::declare_keys(c);
      std::string e = "no error";
      try {
        c.check_all_used();
      } catch (const train::ConfigError& error) {
        e = error.what();
      }
      EXPECT_NE(e.find(r.info.key + " is read only when " + when.key + " = \"" + when.values.front() + "\""),
                std::string::npos)
          << task << ": " << e;
      EXPECT_NE(e.find("(here \"" + other + "\")"), std::string::npos) << task << ": " << e;
      ++checked;
    }
  EXPECT_GE(checked, 6u) << "the translation task's data.source keys and the optimizers' settings at least";
}

TEST(ConfigReference, ListingReadsNoData) {
  // describe-only: the task declares its keys and stops before its data, which here does not exist
  train::Config vit =
      train::Config::parse("[task]\nname = \"vit\"\n[data]\ndataset = \"cifar10\"\ndir = \"/nonexistent\"\n", "v");
  std::vector<std::string> task_keys;
  ASSERT_NO_THROW(task_keys = train::declare_keys(vit));
  EXPECT_NE(std::find(task_keys.begin(), task_keys.end(), "model.pool"), task_keys.end());
  EXPECT_NO_THROW(vit.check_all_used());
  train::Config tsv = train::Config::parse(
      "[task]\nname = \"translation\"\n[data]\nsource = \"tsv\"\npath = \"/nonexistent.tsv\"\n", "t");
  ASSERT_NO_THROW(train::declare_keys(tsv));
  EXPECT_NO_THROW(tsv.check_all_used());
}

TEST(ConfigReference, ShippedConfigsSetOnlyListedKeys) {
  std::size_t files = 0;
  for (const auto& dir : fs::directory_iterator(fs::path(RUNE_SOURCE_DIR) / "examples")) {
    if (!dir.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(dir.path()))
      if (f.path().extension() == ".toml") {
        expect_config_file_is_listed(f.path().string());
        ++files;
      }
  }
  EXPECT_GE(files, 3u);
}

// Tiny real runs through the rune binary: the run folder's config.toml holds every key the run
// read; they must be exactly the listed keys whose conditions the run's values meet.
TEST(ConfigReference, TinyRunsReadExactlyTheListedKeys) {
  const fs::path dir = scratch_dir("config_reference_runs");
  {
    std::ofstream out(dir / "pairs.tsv");
    for (const char* line : {"one\tun", "two\tdeux", "three\ttrois", "four\tquatre", "five\tcinq", "six\tsix",
                             "seven\tsept", "eight\thuit", "nine\tneuf", "ten\tdix"})
      out << line << "\n";
  }
  const std::string tiny_model = "[model]\nd_model = 8\nnhead = 2\nnum_encoder_layers = 1\nnum_decoder_layers = 1\n";
  const std::map<std::string, std::string> configs{
      {"reverse",
       "[task]\nname = \"reverse\"\n[data]\nmax_len = 4\nbatch_size = 4\nbatches_per_epoch = 2\neval_size = 4\n" +
           tiny_model + "[train]\nepochs = 1\noptimizer = \"sgd\"\n"},
      {"numbers", "[task]\nname = \"translation\"\n[data]\nbatch_size = 4\nbatches_per_epoch = 2\neval_size = 4\n" +
                      tiny_model + "[train]\nepochs = 1\n"},
      {"tsv",
       "[task]\nname = \"translation\"\n[data]\nsource = \"tsv\"\npath = \"pairs.tsv\"\nval_fraction = 0.2\n"
       "test_fraction = 0.2\nbatch_size = 2\n" +
           tiny_model +
           "[train]\nepochs = 1\noptimizer = \"adam\"\n"
           "schedule = \"constant\"\ndrophead = 0.1\ndrophead_schedule = \"scheduled\"\ndrophead_warmup_steps = 1\n"},
  };
  for (const auto& [name, text] : configs) {
    std::ofstream(dir / (name + ".toml")) << text;
    const RunResult r = run_rune("train " + name + ".toml --no-progress", dir.string());
    ASSERT_EQ(r.status, 0) << name << ":\n" << r.output;
    expect_resolved_config_is_listed((dir / "runs" / name / "config.toml").string());
  }
  fs::remove_all(dir);
}

TEST(ConfigReference, TheCommandListsKeysWithTheirConditions) {
  const RunResult r = run_rune("config translation", fs::temp_directory_path().string());
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* text : {"[data]", "data.source = \"numbers\"", "data.path = \"\"", "(data.source = tsv)",
                           "model.dim_feedforward = 4 * model.d_model", "train.beta1 = 0.9",
                           "(train.optimizer = adamw, adam)", "train.momentum = 0.9", "(train.optimizer = sgd)",
                           "run.name = the config file's name without .toml", "label smoothing"})
    EXPECT_NE(r.output.find(text), std::string::npos) << text << "\n" << r.output;
  EXPECT_NE(run_rune("config no_such_task", fs::temp_directory_path().string()).status, 0);
}

TEST(ConfigReference, DocsConfigMdIsTheCommandsOutput) {
  const RunResult r = run_rune("config --markdown", fs::temp_directory_path().string());
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path doc = fs::path(RUNE_SOURCE_DIR) / "docs" / "config.md";
  std::istringstream want(r.output), have(read(doc));
  std::string w, h;
  for (int line = 1;; ++line) {
    const bool more_w = static_cast<bool>(std::getline(want, w)), more_h = static_cast<bool>(std::getline(have, h));
    if (!more_w && !more_h) break;
    if (more_w != more_h || w != h) {
      ADD_FAILURE() << doc.string() << " differs from `rune config --markdown` at line " << line
                    << ":\n  file:    " << (more_h ? h : "(end)") << "\n  command: " << (more_w ? w : "(end)")
                    << "\nregenerate it with: build/rune config --markdown > docs/config.md";
      break;
    }
  }
}

}  // namespace
}  // namespace rune
