#include "train/config_reference.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "train/format.hpp"
#include "train/task.hpp"
#include "train/trainer.hpp"

namespace rune::train {

namespace {

struct Declared {
  std::vector<KeyInfo> keys;
  std::set<std::string> task_keys;
};

// The keys a run of `task` reads with one key set (or none), declared without data.
Declared declare(const std::string& task, const std::string& key = "", const std::string& value = "") {
  Config c = Config::parse("", "rune config");
  c.set("task.name=\"" + task + "\"");
  if (!key.empty()) c.set(key + "=\"" + value + "\"");
  const std::vector<std::string> task_keys = declare_keys(c);
  return {c.declarations(), {task_keys.begin(), task_keys.end()}};
}

// The default's TOML text without quotes: a string switch's default value.
std::string unquoted(const std::string& text) {
  return text.size() >= 2 && text.front() == '"' ? text.substr(1, text.size() - 2) : text;
}

}  // namespace

std::string key_section(const std::string& key) {
  const std::size_t dot = key.find('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

std::vector<KeyReference> config_reference(const std::string& task) {
  const std::vector<std::string> names = task_names();
  if (std::find(names.begin(), names.end(), task) == names.end()) {
    throw std::invalid_argument("no task named '" + task + "' (tasks: " + join(names, ", ") + ")");
  }
  const Declared base = declare(task);
  std::vector<KeyReference> refs;
  for (const KeyInfo& k : base.keys) refs.push_back({k, base.task_keys.count(k.key) > 0, {}, false});
  const auto find = [&](const std::string& key) {
    return std::find_if(refs.begin(), refs.end(), [&](const KeyReference& r) { return r.info.key == key; });
  };

  // every switch of the default config (task.name picks the task itself), tried at each other value
  std::vector<KeyInfo> switches;
  for (const KeyInfo& k : base.keys)
    if (!k.choices.empty() && k.key != "task.name") switches.push_back(k);
  std::map<std::string, std::map<std::string, std::set<std::string>>> read_for;  // key -> switch -> values
  for (const KeyInfo& s : switches)
    for (const KeyInfo& k : base.keys) read_for[k.key][s.key].insert(unquoted(s.default_value));
  for (const KeyInfo& s : switches)
    for (const std::string& value : s.choices) {
      if (value == unquoted(s.default_value)) continue;
      const Declared d = declare(task, s.key, value);
      // the keys of this value only go before the next key known already (after the keys they
      // replace: data.path after data.split_permille), or at the end
      std::vector<KeyReference> pending;
      for (const KeyInfo& k : d.keys) {
        read_for[k.key][s.key].insert(value);
        const auto it = find(k.key);
        if (it == refs.end()) {
          pending.push_back({k, d.task_keys.count(k.key) > 0, {}, false});
          continue;
        }
        if (it->info.default_value != k.default_value) it->default_varies = true;
        refs.insert(it, pending.begin(), pending.end());
        pending.clear();
      }
      refs.insert(refs.end(), pending.begin(), pending.end());
    }

  for (KeyReference& r : refs)
    for (const KeyInfo& s : switches) {
      const std::set<std::string>& values = read_for[r.info.key][s.key];
      if (values.empty() || values.size() == s.choices.size()) continue;
      KeyCondition c{s.key, {}};
      for (const std::string& v : s.choices)
        if (values.count(v)) c.values.push_back(v);
      r.conditions.push_back(std::move(c));
    }
  return refs;
}

}  // namespace rune::train
