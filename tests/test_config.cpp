// Configs (train/config.hpp): typed reads with defaults and ranges, --set overrides, errors that
// name the file, the line and the key, including unknown keys with a suggestion, and the
// declarations `rune config` lists.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>

#include "train/config.hpp"

namespace rune::train {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

const char* kText = R"(# a run
seed = 7

[model]
d_model = 128
nhead = 8
dropout = 0.1
activation = "gelu"

[train]
lr = 5e-4
steps = 1000
no_decay = ["*.bias", "*norm*"]
)";

TEST(Config, ReadsTypedValuesAndDefaults) {
  Config c = Config::parse(kText, "base.toml");
  EXPECT_EQ(c.integer("seed", 0, {}, "seed"), 7);
  EXPECT_EQ(c.integer("model.d_model", 64, {8}, "width"), 128);
  EXPECT_EQ(c.integer("model.num_layers", 2, {1}, "layers"), 2) << "absent: the default";
  EXPECT_DOUBLE_EQ(c.number("model.dropout", 0.0, {0.0, 1.0, true}, "dropout"), 0.1);
  EXPECT_DOUBLE_EQ(c.number("train.steps", 1.0, {}, "steps"), 1000.0) << "an integer is a number";
  EXPECT_EQ(c.string("model.activation", "relu", {"relu", "gelu"}, "activation"), "gelu");
  EXPECT_EQ(c.strings("train.no_decay", {}, "patterns"), (std::vector<std::string>{"*.bias", "*norm*"}));
  EXPECT_TRUE(c.boolean("model.norm_first", true, "pre-norm"));
  EXPECT_DOUBLE_EQ(c.number("train.lr", 1e-3, {0.0}, "lr"), 5e-4);
  EXPECT_EQ(c.integer("train.steps", 1, {}, "steps"), 1000);
  c.integer("model.nhead", 4, {}, "heads");
  EXPECT_NO_THROW(c.check_all_used());
  // the resolved config has what was read, defaults included, and parses back to the same
  Config again = Config::parse(c.resolved(), "resolved.toml");
  EXPECT_EQ(again.integer("model.num_layers", 0, {}, "layers"), 2);
  EXPECT_TRUE(again.boolean("model.norm_first", false, "pre-norm"));
  EXPECT_EQ(again.string("model.activation", "", "activation"), "gelu");
}

TEST(Config, SetOverridesAnyKeyWithATomlValue) {
  Config c = Config::parse(kText, "base.toml");
  c.set("model.d_model=256");
  c.set("train.lr=1e-3");
  c.set("model.activation=relu");  // a bare word is a string
  c.set("run.name=\"first try\"");
  c.set("train.no_decay=[\"*.bias\"]");
  EXPECT_EQ(c.integer("model.d_model", 0, {}, "width"), 256);
  EXPECT_DOUBLE_EQ(c.number("train.lr", 0.0, {}, "lr"), 1e-3);
  EXPECT_EQ(c.string("model.activation", "", "activation"), "relu");
  EXPECT_EQ(c.string("run.name", "", "name"), "first try");
  EXPECT_EQ(c.strings("train.no_decay", {}, "patterns"), std::vector<std::string>{"*.bias"});
  EXPECT_NE(error_of([&] { c.set("nonsense"); }).find("expected section.key=value"), std::string::npos);
  c.set("model.d_model=\"wide\"");
  const std::string e = error_of([&] { c.integer("model.d_model", 0, {}, "width"); });
  EXPECT_NE(e.find("base.toml (--set): model.d_model: expected an integer, got a string"), std::string::npos) << e;
}

TEST(Config, ErrorsNameTheFileTheLineAndTheKey) {
  Config c = Config::parse(kText, "base.toml");
  std::string e = error_of([&] { c.number("model.dropout", 0.0, {0.0, 0.05}, "dropout"); });
  EXPECT_NE(e.find("base.toml:7: model.dropout: 0.1 is outside [0, 0.05]"), std::string::npos) << e;
  e = error_of([&] { c.string("model.d_model", "", "width"); });
  EXPECT_NE(e.find("base.toml:5: model.d_model: expected a string, got an integer"), std::string::npos) << e;
  e = error_of([&] { c.string("model.activation", "relu", {"relu", "swish"}, "activation"); });
  EXPECT_NE(e.find("base.toml:8: model.activation: 'gelu' is not one of relu, swish"), std::string::npos) << e;
  e = error_of([&] { c.integer("train.steps", 1, {1, 100}, "steps"); });
  EXPECT_NE(e.find("base.toml:12: train.steps: 1000 is outside [1, 100]"), std::string::npos) << e;
  // a check across keys names the key it blames
  e = error_of([&] { c.fail("model.nhead", "must divide model.d_model (128)"); });
  EXPECT_NE(e.find("base.toml:6: model.nhead: must divide model.d_model (128)"), std::string::npos) << e;
  e = error_of([&] { c.fail("model.heads", "is required"); });
  EXPECT_NE(e.find("base.toml (default): model.heads: is required"), std::string::npos) << e;
}

TEST(Config, UnknownKeysAreErrorsWithASuggestion) {
  Config c = Config::parse("[model]\nd_modle = 128\nnhead = 8\n[trian]\nlr = 1.0\n", "typo.toml");
  c.integer("model.d_model", 64, {}, "width");
  c.integer("model.nhead", 8, {}, "heads");
  c.number("train.lr", 1e-3, {}, "lr");
  const std::string e = error_of([&] { c.check_all_used(); });
  EXPECT_NE(e.find("typo.toml:2: unknown key model.d_modle (did you mean model.d_model?)"), std::string::npos) << e;
  EXPECT_NE(e.find("typo.toml:5: unknown key trian.lr (did you mean train.lr?)"), std::string::npos) << e;
}

// A command that reads part of a config (rune eval: a checkpoint's task keys) checks only what
// --set gave: the file's unread keys pass, a mistyped or unread override does not.
TEST(Config, OverridesThatNoReadUsesAreErrors) {
  Config c = Config::parse("[data]\neval_size = 16\n[train]\nlr = 1.0\n", "ckpt.h5 (its config)");
  c.set("data.eval_size=10");
  c.integer("data.eval_size", 1000, {1}, "examples");
  EXPECT_NO_THROW(c.check_overrides_used()) << "train.lr is in the file, not an override";
  c.set("data.eval_sise=10");
  c.set("train.lr=0.5");
  const std::string e = error_of([&] { c.check_overrides_used(); });
  EXPECT_NE(e.find("ckpt.h5 (its config) (--set): unknown key data.eval_sise (did you mean data.eval_size?)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("unknown key train.lr"), std::string::npos) << e;
  EXPECT_EQ(e.find("unknown key data.eval_size"), std::string::npos) << e;
}

TEST(Config, EveryReadDeclaresItsKeyForRuneConfig) {
  Config c = Config::parse(kText, "base.toml");
  c.integer("model.d_model", 64, {8}, "width");
  c.integer("model.dim_feedforward", {4 * 128, "4 * model.d_model"}, {1, 4096}, "feed-forward width");
  c.number("model.dropout", 0.0, {0.0, 1.0, true}, "dropout");
  c.number("train.lr", 1e-9, {}, "lr");
  c.string("model.activation", "relu", {"relu", "gelu"}, "activation");
  c.boolean("model.norm_first", {true, "true unless asked"}, "pre-norm");
  c.strings("train.no_decay", {"*.bias"}, "patterns");
  c.integer("model.d_model", 32, {1}, "declared again");  // the first declaration stays
  const std::vector<KeyInfo>& d = c.declarations();
  ASSERT_EQ(d.size(), 7u);
  const auto row = [](const KeyInfo& k) {
    std::string choices;
    for (const std::string& ch : k.choices) choices += ch + ";";
    return k.key + "|" + k.type + "|" + k.default_value + "|" + k.default_rule + "|" + k.range + "|" + choices + "|" +
           k.description;
  };
  EXPECT_EQ(row(d[0]), "model.d_model|integer|64||>= 8||width") << "the default, not the value given";
  EXPECT_EQ(row(d[1]), "model.dim_feedforward|integer|512|4 * model.d_model|[1, 4096]||feed-forward width");
  EXPECT_EQ(row(d[2]), "model.dropout|float|0.0||[0, 1)||dropout");
  EXPECT_EQ(row(d[3]), "train.lr|float|1e-9||||lr");
  EXPECT_EQ(row(d[4]), "model.activation|string|\"relu\"|||relu;gelu;|activation");
  EXPECT_EQ(row(d[5]), "model.norm_first|boolean|true|true unless asked|||pre-norm");
  EXPECT_EQ(row(d[6]), "train.no_decay|strings|[\"*.bias\"]||||patterns");
  const std::vector<std::string> given = c.given_keys();
  EXPECT_EQ(std::set<std::string>(given.begin(), given.end()),
            (std::set<std::string>{"seed", "model.d_model", "model.nhead", "model.dropout", "model.activation",
                                   "train.lr", "train.steps", "train.no_decay"}));
}

// given_values: the config flattened, each value as TOML writes it, --set values included.
TEST(Config, GivenValuesFlattenTheConfig) {
  Config c = Config::parse(kText, "base.toml");
  c.set("model.d_model=256");
  c.set("model.dropout=0.6");  // toml++ itself writes 0.59999999999999998
  c.set("train.eps=1e-9");
  c.set("train.warmup=2.0");
  c.set("run.name=\"a \\\"b\\\"\"");
  const std::vector<std::pair<std::string, std::string>> want{{"model.activation", "\"gelu\""},
                                                              {"model.d_model", "256"},
                                                              {"model.dropout", "0.6"},
                                                              {"model.nhead", "8"},
                                                              {"run.name", "\"a \\\"b\\\"\""},
                                                              {"seed", "7"},
                                                              {"train.eps", "1e-9"},
                                                              {"train.lr", "0.0005"},
                                                              {"train.no_decay", "[\"*.bias\", \"*norm*\"]"},
                                                              {"train.steps", "1000"},
                                                              {"train.warmup", "2.0"}};
  EXPECT_EQ(c.given_values(), want);
}

// A --set value that is no TOML value stays a string for a key that wants one, and otherwise
// says what is wrong with it instead of "got a string".
TEST(Config, SetValuesThatAreNoTomlValueSayWhy) {
  Config c = Config::parse(kText, "base.toml");
  c.set("model.d_model=12x");
  c.set("train.lr=[");
  c.set("seed=99999999999999999999999");
  c.set("model.norm_first=tru");
  c.set("run.name=foo");
  c.set("run.dir=12x");
  std::string e = error_of([&] { c.integer("model.d_model", 0, {}, "width"); });
  EXPECT_NE(e.find("base.toml (--set): model.d_model: 12x is not a TOML value ("), std::string::npos) << e;
  e = error_of([&] { c.number("train.lr", 0.0, {}, "lr"); });
  EXPECT_NE(e.find("base.toml (--set): train.lr: [ is not a TOML value ("), std::string::npos) << e;
  e = error_of([&] { c.integer("seed", 0, {}, "seed"); });
  EXPECT_NE(e.find("seed: 99999999999999999999999: the integer does not fit in 64 bits"), std::string::npos) << e;
  e = error_of([&] { c.boolean("model.norm_first", true, "pre-norm"); });
  EXPECT_NE(e.find("model.norm_first: expected true or false, got the word 'tru' (a string)"), std::string::npos) << e;
  EXPECT_EQ(c.string("run.name", "", "name"), "foo");
  EXPECT_EQ(c.string("run.dir", "", "folder"), "12x") << "a key that wants a string takes the word";
  // a valid value set over a bad one reads as the value
  c.set("model.d_model=64");
  EXPECT_EQ(c.integer("model.d_model", 0, {}, "width"), 64);
}

// Ranges open on one side print their one bound, never the sentinel maximum or minimum.
TEST(Config, RangeErrorsPrintTheBoundsReadably) {
  Config c = Config::parse("[a]\nzero = 0\nbig = 600\nneg = -1.5\nhalf = 1.5\nnan = nan\n", "r.toml");
  const std::vector<std::pair<std::string, std::function<void()>>> cases{
      {"r.toml:2: a.zero: 0 is too small: must be at least 1", [&] { c.integer("a.zero", 1, {1}, "count"); }},
      {"a.big: 600 is too large: must be at most 512",
       [&] {
         c.integer("a.big", 1, {std::numeric_limits<std::int64_t>::min(), 512}, "count");
       }},
      {"a.neg: -1.5 is too small: must be at least 0",
       [&] {
         c.number("a.neg", 1.0, {0.0, std::numeric_limits<double>::max()}, "rate");
       }},
      {"a.half: 1.5 is too large: must be below 1",
       [&] {
         c.number("a.half", 0.5, {-std::numeric_limits<double>::infinity(), 1.0, true}, "rate");
       }},
      {"a.half: 1.5 is outside [0, 1)",
       [&] {
         c.number("a.half", 0.5, {0.0, 1.0, true}, "rate");
       }},
      {"a.nan: nan is not a finite number",
       [&] {
         c.number("a.nan", 0.5, {0.0, 1.0}, "rate");
       }},
  };
  for (const auto& [want, read] : cases) {
    const std::string e = error_of(read);
    EXPECT_NE(e.find(want), std::string::npos) << e;
    for (const char* sentinel : {"9223372036854775807", "179769", "1.79769e+308", "inf"})
      EXPECT_EQ(e.find(sentinel), std::string::npos) << e;
  }
  // the declared range of a key bounded by the largest double is one-sided too
  c.number("a.x", 1.0, {0.0, std::numeric_limits<double>::max()}, "x");
  EXPECT_EQ(c.declarations().back().range, ">= 0");
}

// A key read only in another branch of a switch (data.eval_size for data.source = "numbers") is
// named with its condition, not as an unknown key; it is not declared.
TEST(Config, KeysOfTheBranchNotTakenSayWhenTheyAreRead) {
  Config c = Config::parse("[data]\nsource = \"tsv\"\npath = \"x.tsv\"\neval_size = 10\n", "tsv.toml");
  c.set("data.split_permille=5");
  c.set("data.eval_sise=3");
  c.string("data.source", "numbers", {"numbers", "tsv"}, "source");
  c.string("data.path", "", "path");
  c.unused_here({"data.eval_size", "data.split_permille"}, "data.source", {"numbers"});
  std::string e = error_of([&] { c.check_all_used(); });
  EXPECT_NE(e.find("tsv.toml:4: data.eval_size is read only when data.source = \"numbers\" (here \"tsv\")"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("tsv.toml (--set): data.split_permille is read only when data.source = \"numbers\""),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("unknown key data.eval_sise"), std::string::npos) << e;
  EXPECT_EQ(e.find("unknown key data.eval_size"), std::string::npos) << e;
  e = error_of([&] { c.check_overrides_used(); });
  EXPECT_NE(e.find("data.split_permille is read only when data.source = \"numbers\" (here \"tsv\")"), std::string::npos)
      << e;
  EXPECT_EQ(c.declarations().size(), 2u) << "the other branch's keys are not declared";
  // several values: "a" or "b"
  c.unused_here({"data.eval_size"}, "data.source", {"numbers", "words"});
  e = error_of([&] { c.check_all_used(); });
  EXPECT_NE(e.find("data.eval_size is read only when data.source = \"numbers\" or \"words\""), std::string::npos) << e;
}

// A config file that sets no key is refused by name (it would start a run of defaults).
TEST(Config, AFileThatSetsNoKeyIsRefused) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  for (const char* text : {"", "# only a comment\n\n   \n", "[task]\n"}) {
    const std::string path = (dir / "rune_config_empty.toml").string();
    std::ofstream(path) << text;
    const std::string e = error_of([&] { Config::load(path); });
    EXPECT_NE(e.find("config " + path + " sets no key; name at least the task (task.name = "), std::string::npos)
        << "'" << text << "': " << e;
    std::filesystem::remove(path);
  }
  EXPECT_NO_THROW(Config::parse("", "rune config")) << "a text (a checkpoint's config, rune config's) may be empty";
}

TEST(Config, SyntaxErrorsAndMissingFiles) {
  std::string e = error_of([] { Config::parse("[model]\nd_model = = 3\n", "broken.toml"); });
  EXPECT_NE(e.find("broken.toml:2:"), std::string::npos) << e;
  e = error_of([] { Config::load("/nonexistent/run.toml"); });
  EXPECT_NE(e.find("config /nonexistent/run.toml cannot be read"), std::string::npos) << e;
  const std::string path = (std::filesystem::temp_directory_path() / "rune_config_test.toml").string();
  std::ofstream(path) << "seed = 3\n";
  Config c = Config::load(path);
  EXPECT_EQ(c.origin(), path);
  EXPECT_EQ(c.integer("seed", 0, {}, "seed"), 3);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace rune::train
