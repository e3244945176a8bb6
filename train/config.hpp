// Experiment configs: TOML files (through toml++, Debian's libtomlplusplus) read through typed
// accessors that declare every key as they read it: its default, its valid range or choices, and a
// one-line description.
//
//   Config c = Config::load("examples/translation/numbers.toml");
//   c.set("model.d_model=256");                        // --set overrides, parsed as TOML values
//   const auto d = c.integer("model.d_model", 128, {8}, "width of the model");  // at least 8
//   const auto h = c.integer("model.nhead", 8, {1}, "attention heads per layer");
//   if (d % h) c.fail("model.nhead", "must divide model.d_model (" + std::to_string(d) + ")");
//   const auto f = c.integer("model.dim_feedforward", {4 * d, "4 * model.d_model"}, {1}, "feed-forward width");
//   c.check_all_used();                                 // an unknown key is an error
//
// A default computed from other keys or from the data is given with its rule ({value, "rule"}):
// the value is used, the rule is what `rune config` shows. declarations() is every key read, with
// its type, default, range and description: `rune config` lists them (train/config_reference.hpp).
//
// Every error names the file, the line and the key ("numbers.toml:21: model.dropout: 1.5 is
// outside [0, 1)"); an unknown key suggests the closest declared one. resolved() is the effective
// config as TOML, defaults included: what a run folder and a checkpoint store.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace rune::train {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A key's default: its value, and for a default computed from other keys or from the data, the
// rule `rune config` shows in its place ("4 * model.d_model"). Built from a value or {value, rule}.
template <class T>
struct Default {
  template <class U, class = std::enable_if_t<std::is_convertible_v<U, T> &&
                                              (!std::is_same_v<T, bool> || std::is_same_v<std::decay_t<U>, bool>)>>
  Default(U&& v, std::string r = "") : value(std::forward<U>(v)), rule(std::move(r)) {}
  T value;
  std::string rule;
};

// Valid values of an integer key, [min, max]: {1} is "at least 1", {} any.
struct IntRange {
  std::int64_t min = std::numeric_limits<std::int64_t>::min();
  std::int64_t max = std::numeric_limits<std::int64_t>::max();
};
// Valid values of a float key, [min, max], or [min, max) with max_open: {0.0, 1.0, true}.
struct NumberRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool max_open = false;
};

// A declared key, as `rune config` shows it.
struct KeyInfo {
  std::string key;                   // dotted: "model.d_model"
  std::string type;                  // integer, float, boolean, string, strings
  std::string default_value;         // TOML text of the default: 128, 0.1, "gelu", true, ["a"]
  std::string default_rule;          // how a computed default is chosen, or ""
  std::string range;                 // "[1, 512]", ">= 0", "[0, 1)", "" (any); for strings: ""
  std::vector<std::string> choices;  // a string key's valid values, or empty (any)
  std::string description;
};

class Config {
 public:
  // A config file; parse errors name file:line:column. A file that sets no key (empty, or only
  // comments) is refused: a run of nothing but defaults is a mistake more often than a wish.
  static Config load(const std::string& path);
  static Config parse(const std::string& text, const std::string& origin);  // origin names it in errors
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;
  ~Config();

  // "section.key=value": value is a TOML value (42, 0.5, true, "text", [1, 2]); a bare word that
  // is not one is taken as a string. Creates the key if absent (still checked when read). A key
  // read as anything but a string says why its bare word is no value: "12x is not a TOML value",
  // "99999999999999999999999: the integer does not fit in 64 bits".
  void set(const std::string& assignment);

  // The typed reads: each declares `key` (its default, range or choices, and a one-line
  // description) and returns the value given, or the default. A value of the wrong type or out of
  // range is a ConfigError naming the file, line and key.
  std::int64_t integer(const std::string& key, const Default<std::int64_t>& fallback, IntRange range,
                       const std::string& description);
  // A float; an integer in the file is accepted.
  double number(const std::string& key, const Default<double>& fallback, NumberRange range,
                const std::string& description);
  bool boolean(const std::string& key, const Default<bool>& fallback, const std::string& description);
  std::string string(const std::string& key, const Default<std::string>& fallback, const std::string& description);
  std::string string(const std::string& key, const Default<std::string>& fallback,
                     const std::vector<std::string>& choices, const std::string& description);
  std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& fallback,
                                   const std::string& description);
  bool has(const std::string& key) const;       // given in the file or by set()
  std::vector<std::string> given_keys() const;  // every key given (file or set()), dotted
  // Every key given (file or set()), dotted, with its value as TOML text ("tsv" quoted, 3, 0.5,
  // true, [1, 2]), sorted by key: a config flattened, to compare runs (rune report).
  std::vector<std::pair<std::string, std::string>> given_values() const;
  // Every key read so far, in the order first read (a key read twice keeps its first declaration).
  const std::vector<KeyInfo>& declarations() const;

  // Throws ConfigError for `key` with the file and line where it was given (for checks that
  // involve several keys).
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  // Where `key` was given, as errors begin: "numbers.toml:21", "numbers.toml (--set)" or, not
  // given, "numbers.toml (default)".
  std::string where(const std::string& key) const;

  // Keys the branch taken leaves unread: each of `keys` is read only when `switch_key` (read
  // already) is one of `values`. Given anyway, check_all_used() and check_overrides_used() say
  // so instead of calling it unknown: a task that reads data.eval_size only for
  // data.source = "numbers" calls, in its "tsv" branch,
  //   c.unused_here({"data.batches_per_epoch", "data.eval_size", "data.split_permille"}, "data.source", {"numbers"});
  // Nothing is declared: `rune config` lists such keys under their own branch only.
  void unused_here(const std::vector<std::string>& keys, const std::string& switch_key,
                   const std::vector<std::string>& values);
  // Throws ConfigError listing every key given but never read, each with its line and the
  // closest declared key (or, for a key of unused_here(), the condition under which it is read).
  void check_all_used() const;
  // Throws ConfigError for every key given by set() that no read declared: a command that reads
  // only part of a config (rune eval reads the task's keys of a checkpoint's config, not [train])
  // still refuses an override that would do nothing.
  void check_overrides_used() const;
  std::string resolved() const;  // TOML text: every key read, with the value used
  const std::string& origin() const;

 private:
  struct Impl;
  explicit Config(std::unique_ptr<Impl> impl);
  // The error for `key` holding a value that is not `expected` ("an integer").
  [[noreturn]] void wrong_type(const std::string& key, const std::string& expected) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rune::train
