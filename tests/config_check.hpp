// Checks of configs against `rune config`'s reference (train/config_reference.hpp), shared by the
// generic tests and the tasks' own: a run's resolved config holds exactly the listed keys whose
// conditions its values meet, and a config file sets only listed keys whose conditions hold.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "train/config.hpp"
#include "train/config_reference.hpp"

namespace rune {

// The listed keys of the task named in `config` that its values (or the defaults) make a run read.
inline std::set<std::string> keys_read_for(train::Config& config) {
  const std::string task = config.has("task.name") ? config.string("task.name", "", "the task") : "reverse";
  const std::vector<train::KeyReference> refs = train::config_reference(task);
  const auto value_of = [&](const std::string& key) -> std::string {  // a switch: a string key
    if (config.has(key)) return config.string(key, "", "a switch");
    for (const train::KeyReference& r : refs)
      if (r.info.key == key) return r.info.default_value.substr(1, r.info.default_value.size() - 2);  // unquoted
    return "";
  };
  std::set<std::string> keys;
  for (const train::KeyReference& r : refs) {
    bool read = true;
    for (const train::KeyCondition& c : r.conditions) {
      const std::string v = value_of(c.key);
      read = read && std::find(c.values.begin(), c.values.end(), v) != c.values.end();
    }
    if (read) keys.insert(r.info.key);
  }
  return keys;
}

// A run folder's config.toml (every key the run read, with its value) against the reference.
inline void expect_resolved_config_is_listed(const std::string& path) {
  train::Config config = train::Config::load(path);
  const std::vector<std::string> given = config.given_keys();
  const std::set<std::string> read(given.begin(), given.end()), listed = keys_read_for(config);
  for (const std::string& key : read)
    EXPECT_TRUE(listed.count(key)) << path << ": the run read " << key << ", which `rune config` does not list for "
                                   << "its task (or lists under a condition the run's values do not meet)";
  for (const std::string& key : listed)
    EXPECT_TRUE(read.count(key)) << path << ": `rune config` lists " << key << " for the run's values, but the run "
                                 << "did not read it";
}

// A config file (examples/*/*.toml): every key it sets is listed, and read with its values.
inline void expect_config_file_is_listed(const std::string& path) {
  train::Config config = train::Config::load(path);
  const std::set<std::string> read = keys_read_for(config);
  for (const std::string& key : config.given_keys())
    EXPECT_TRUE(read.count(key)) << path << " sets " << key << ", which `rune config` does not list for its task "
                                 << "(or lists under a condition its values do not meet)";
}

}  // namespace rune
