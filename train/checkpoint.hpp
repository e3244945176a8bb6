// Checkpoints in HDF5: everything a run needs to continue exactly, in one file that h5py reads.
//
// Layout (format "runestone-checkpoint", version 2):
//   /                          attributes: format, format_version, config (the full resolved
//                              config text), epoch, step, optimizer (its name), optimizer_steps
//   /params/<path>             every parameter and buffer (Module::state_dict: a batch norm's
//                              running statistics too), float32, its exact shape; <path> is the
//                              name with '.' -> '/' (encoder/layers/0/norm1/weight)
//   /optimizer/<path>/<slot>   per-parameter optimizer state (exp_avg, exp_avg_sq, step, ...)
//   /rng                       attributes: each generator's state by name ("init", "dropout", ...)
//   /metrics                   attributes: validation metrics at save time
//   /meta/<key>                task metadata: string lists (a vocabulary, class names) and
//                              number lists (image size, normalisation mean and std)
//   /architecture              attributes: the facts that say how to compute with the parameters
//                              (norm_first, activation, layer_norm_eps, embedding scale, positions,
//                              token framing ...), each an integer, a float or a string
// The file is that HDF5 file followed by one line, "\nrunestone-checkpoint sha256 <64 hex>\n": the
// SHA-256 of every byte before it (HDF5 ignores bytes past its end; h5py opens the file as it is).
// A read checks that line over the whole file before HDF5 sees any of it, so a flipped bit
// anywhere (a parameter, the config, a vocabulary, HDF5's own structures) is refused by name and
// libhdf5 never parses a damaged file. The HDF5 file is built in memory and written by
// write_file: atomically ("<name>.tmp", fsync, rename), so a crash or a full disk leaves the
// previous checkpoint intact and HDF5 never meets a failing disk. Reads then check the format,
// the version and every dataset's shape against the file's size before allocating: a truncated,
// corrupt or foreign file is refused with an error naming it, never half-loaded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "nn/module.hpp"

namespace rune::train {

inline constexpr const char* kCheckpointFormat = "runestone-checkpoint";
inline constexpr std::int64_t kCheckpointVersion = 2;

// An architecture fact: an integer, a float or a string.
using CheckpointValue = std::variant<std::int64_t, double, std::string>;

struct Checkpoint {
  nn::NamedTensors params;           // parameters and buffers, by name (dots)
  nn::NamedTensors optimizer_state;  // "<param name>/<slot>", as Optimizer::state() gives it
  std::string optimizer;             // the optimizer's name ("AdamW"), empty without state
  std::int64_t optimizer_steps = 0;
  std::int64_t epoch = 0, step = 0;
  std::map<std::string, std::string> rng;                        // generator states (Generator::state())
  std::map<std::string, double> metrics;                         // validation metrics at save time
  std::string config;                                            // the resolved config, as text
  std::map<std::string, std::vector<std::string>> meta_strings;  // vocabulary, class names, ...
  std::map<std::string, std::vector<double>> meta_numbers;       // image size, mean, std, ...
  std::map<std::string, std::string> meta_bytes;                 // files kept whole (a SentencePiece model)
  std::map<std::string, CheckpointValue> architecture;           // how to compute with params
};

// Writes c to `path` atomically (see above). Throws std::runtime_error naming the path on failure,
// leaving any previous file at `path` untouched.
void save_checkpoint(const std::string& path, const Checkpoint& c);

// Reads and validates the whole file; throws std::runtime_error naming the path and the problem.
Checkpoint read_checkpoint(const std::string& path);

// The parameters of c into `module` (Module::load_state_dict: strict by default; non-strict
// loads what matches and reports the rest). Errors name the checkpoint file.
nn::LoadReport load_parameters(nn::Module& module, const Checkpoint& c, const std::string& path, bool strict = true);

// Keeps a run's checkpoints: "last.h5" at every save, the best by a validation metric as
// "best.h5", and the last `keep_last` numbered ones ("step-000120.h5"), deleting older ones.
// Made on a folder that has checkpoints (a resumed run), it removes what a killed run left (the
// "*.tmp" of an unfinished save, numbered files beyond keep_last) and takes the best value so far
// from best.h5; an unreadable best.h5 is a note (notes()), not an error.
class CheckpointManager {
 public:
  // higher_is_better: true for accuracy or BLEU, false for a loss.
  CheckpointManager(std::string folder, int keep_last = 3, std::string metric = "", bool higher_is_better = true);
  // Saves c as last.h5 and step-<step>.h5, and best.h5 when c.metrics[metric] is at least as
  // good as best.h5's: of equal checkpoints the later, more trained, one is kept (an exact-match
  // accuracy that reaches 100% halfway would otherwise pin best.h5 there).
  // Returns the numbered file's path.
  std::string save(const Checkpoint& c);
  const std::string& folder() const { return folder_; }
  bool has_best() const { return has_best_; }
  double best_value() const { return best_; }
  // What the constructor found wrong and worked around, one line each.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  void prune();  // deletes the oldest numbered files beyond keep_last
  std::string folder_, metric_;
  int keep_last_;
  bool higher_is_better_, has_best_ = false;
  double best_ = 0;
  std::vector<std::string> numbered_;
  std::vector<std::string> notes_;
};

}  // namespace rune::train
