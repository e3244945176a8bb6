// A task's checkpoint as a reader of the file gets it: describe() and the model's parameters,
// saved and read back (train/checkpoint.hpp), for the tests of each task's /architecture facts.
#pragma once

#include <filesystem>
#include <string>

#include "tests/helpers.hpp"
#include "train/checkpoint.hpp"
#include "train/task.hpp"

namespace rune {

inline train::Checkpoint saved_and_read(train::Task& task, const std::string& name) {
  train::Checkpoint c;
  c.params = task.model().named_parameters();
  task.describe(c);
  const std::filesystem::path dir = scratch_dir("checkpoint_" + name);
  train::save_checkpoint((dir / "described.h5").string(), c);
  train::Checkpoint read = train::read_checkpoint((dir / "described.h5").string());
  std::filesystem::remove_all(dir);
  return read;
}

// One architecture fact of c, of type T; a missing fact or another type fails the test.
template <class T>
T fact(const train::Checkpoint& c, const std::string& key) {
  const auto it = c.architecture.find(key);
  if (it == c.architecture.end()) {
    ADD_FAILURE() << "no architecture fact " << key;
    return T{};
  }
  if (const T* v = std::get_if<T>(&it->second)) return *v;
  ADD_FAILURE() << "architecture fact " << key << " has another type";
  return T{};
}

}  // namespace rune
