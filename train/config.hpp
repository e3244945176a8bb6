// Experiment configs: TOML files (through toml++, Debian's libtomlplusplus) read through typed
// accessors that declare every key with its default and its valid range as they read it.
//
//   Config c = Config::load("examples/translation/numbers.toml");
//   c.set("model.d_model=256");                        // --set overrides, parsed as TOML values
//   const auto d = c.integer("model.d_model", 128, 8);  // default 128, at least 8
//   const auto h = c.integer("model.nhead", 8, 1);
//   if (d % h) c.fail("model.nhead", "must divide model.d_model (" + std::to_string(d) + ")");
//   c.check_all_used();                                 // an unknown key is an error
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
#include <vector>

namespace rune::train {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Config {
 public:
  static Config load(const std::string& path);                              // parse errors: file:line:column
  static Config parse(const std::string& text, const std::string& origin);  // origin names it in errors
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;
  ~Config();

  // "section.key=value": value is a TOML value (42, 0.5, true, "text", [1, 2]); a bare word that
  // is not one is taken as a string. Creates the key if absent (still checked when read).
  void set(const std::string& assignment);

  std::int64_t integer(const std::string& key, std::int64_t fallback,
                       std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                       std::int64_t max = std::numeric_limits<std::int64_t>::max());
  // A float; an integer in the file is accepted. The range is [min, max], or [min, max) with
  // max_open.
  double number(const std::string& key, double fallback, double min = -std::numeric_limits<double>::infinity(),
                double max = std::numeric_limits<double>::infinity(), bool max_open = false);
  bool boolean(const std::string& key, bool fallback);
  std::string string(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices = {});
  std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& fallback);
  bool has(const std::string& key) const;  // given in the file or by set()

  // Throws ConfigError for `key` with the file and line where it was given (for checks that
  // involve several keys).
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;
  // Throws ConfigError listing every key given but never read, each with its line and the
  // closest declared key.
  void check_all_used() const;
  std::string resolved() const;  // TOML text: every key read, with the value used
  const std::string& origin() const;

 private:
  struct Impl;
  explicit Config(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rune::train
