// The reference of the config keys a task's run reads, built from the code that reads them: every
// key's type, default (or the rule of a computed default), range or choices and description, as
// declared by the typed reads of train/config.hpp. `rune config` prints it and docs/config.md is
// its Markdown form, so the reference cannot drift from the code.
//
// How it is collected: declare_keys (train/trainer.hpp) declares a run's keys on the task's
// default config, with the task in describe-only mode (it reads its keys and stops: no data, no
// model). Keys read only for some values of another key are found by trying each value: every
// string key with choices (a switch: train.optimizer, data.source, ...) is set to each of its
// other choices in turn and the keys are declared again. A key declared for some values of a
// switch only is conditional on it:
//
//   train.beta1      (train.optimizer = adamw, adam)
//   data.path        (data.source = tsv)
//
// One switch varies at a time, from the defaults: a key that needs two switches away from their
// defaults at once would not be found (the tests check that every key of the shipped configs and
// of real runs is listed).
#pragma once

#include <string>
#include <vector>

#include "train/config.hpp"

namespace rune::train {

// "key = one of values": a switch and the values for which a key is read.
struct KeyCondition {
  std::string key;
  std::vector<std::string> values;  // in the order of the switch's choices
};

struct KeyReference {
  KeyInfo info;                          // as declared on the default config (or the first value it is read for)
  bool task_key = false;                 // declared by the task (else by the trainer: seed, task.name, [train], [run])
  std::vector<KeyCondition> conditions;  // read only when each holds; empty: always read
  bool default_varies = false;           // the default differs between a switch's values (info.default_rule says how)
};

// Every key `rune train` reads for `task`, in the order declared (keys of a switch's other values
// after the keys they replace). Throws std::invalid_argument for a task that is not registered.
std::vector<KeyReference> config_reference(const std::string& task);

// A key's section: "model" for model.d_model, "" for a top-level key (seed).
std::string key_section(const std::string& key);

}  // namespace rune::train
