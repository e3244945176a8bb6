// A run's metrics.jsonl: one JSON object of numbers per line, training records (step, epoch,
// loss, lr, grad_norm, items_per_s, elapsed_s) and validation records (step, val_*). Non-finite
// values are written as null and read back as NaN.
#pragma once

#include <cstdint>
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

// Records are appended (rewriting the file per record would be quadratic), each line with one
// write(2) straight to the file, no buffer in between: a line is on disk, or the append failed.
class MetricsLog {
 public:
  // Opens `path` for appending. With keep_until_step > 0 (a resumed run), the records past that
  // step are dropped first (atomically); with 0, the file starts empty.
  MetricsLog(std::string path, std::int64_t keep_until_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  // Appends one record. If the write fails (a full disk, a file size limit) the file is cut back
  // to its previous length, so it never ends in half a line, and std::runtime_error names it.
  void append(const std::vector<std::pair<std::string, double>>& fields);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace rune::train
