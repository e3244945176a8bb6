#include "train/metrics_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "train/files.hpp"

namespace rune::train {

namespace {

// The record on one line (line `number` of `path`, for errors): a JSON object of numbers, null
// read as NaN.
MetricsRecord parse_record(const std::string& line, const std::string& path, int number) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw std::runtime_error(path + ":" + std::to_string(number) + ": not a JSON object");
  MetricsRecord r;
  for (const auto& [key, value] : j.items()) {
    if (value.is_null())
      r[key] = std::numeric_limits<double>::quiet_NaN();
    else if (value.is_number())
      r[key] = value.get<double>();
    else
      throw std::runtime_error(path + ":" + std::to_string(number) + ": '" + key + "' is not a number");
  }
  return r;
}

// Calls f(line, record) for every non-empty line of the file.
template <class F>
void for_each_record(const std::string& path, F&& f) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty()) f(line, parse_record(line, path, number));
  }
}

}  // namespace

std::vector<MetricsRecord> read_metrics_log(const std::string& path) {
  std::vector<MetricsRecord> records;
  for_each_record(path, [&](const std::string&, MetricsRecord r) { records.push_back(std::move(r)); });
  return records;
}

std::string metrics_json(const std::vector<std::pair<std::string, double>>& fields) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : fields)
    j[k] = std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
  return j.dump() + "\n";
}

MetricsLog::MetricsLog(std::string path, std::int64_t keep_until_step) : path_(std::move(path)) {
  std::string kept;
  if (keep_until_step > 0 && std::filesystem::exists(path_)) {
    // the records up to the step, as they were written
    for_each_record(path_, [&](const std::string& line, const MetricsRecord& r) {
      const auto step = r.find("step");
      if (step != r.end() && step->second <= static_cast<double>(keep_until_step)) kept += line + "\n";
    });
  }
  write_file(path_, kept, "metrics log");
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0)
    throw std::runtime_error("metrics log " + path_ + ": cannot open it for appending: " + std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::append(const std::vector<std::pair<std::string, double>>& fields) {
  const std::string line = metrics_json(fields);
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      const bool cut = before >= 0 && ::ftruncate(fd_, before) == 0;  // no half line left behind
      throw std::runtime_error("metrics log " + path_ + ": appending a record failed: " + std::strerror(err) +
                               (cut ? "" : " (the file may end in part of it)"));
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace rune::train
