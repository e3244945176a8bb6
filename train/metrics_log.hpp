// A run's metrics.jsonl: one JSON object of numbers per line, training records (step, epoch,
// loss, lr, grad_norm, items_per_s, elapsed_s) and validation records (step, val_*). Non-finite
// values are written as null and read back as NaN.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rune::train {

using MetricsRecord = std::map<std::string, double>;

// Every record of a metrics.jsonl file; throws std::runtime_error naming the file and line of a
// line that is not a JSON object of numbers.
std::vector<MetricsRecord> read_metrics_log(const std::string& path);

// One record as a JSON line (with the newline), keys in the given order.
std::string metrics_json(const std::vector<std::pair<std::string, double>>& fields);

class MetricsLog {
 public:
  // Opens `path` for appending. With keep_until_step > 0 (a resumed run), the records past that
  // step are dropped first (atomically); with 0, the file starts empty.
  MetricsLog(std::string path, std::int64_t keep_until_step);
  // Appends one record and flushes it; throws std::runtime_error naming the file if it fails.
  void append(const std::vector<std::pair<std::string, double>>& fields);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace rune::train
