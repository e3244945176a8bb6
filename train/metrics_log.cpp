#include "train/metrics_log.hpp"

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "train/files.hpp"

namespace rune::train {

std::vector<MetricsRecord> read_metrics_log(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<MetricsRecord> records;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) throw std::runtime_error(path + ":" + std::to_string(number) + ": not a JSON object");
    MetricsRecord r;
    for (const auto& [key, value] : j.items()) {
      if (value.is_null()) r[key] = std::numeric_limits<double>::quiet_NaN();
      else if (value.is_number()) r[key] = value.get<double>();
      else throw std::runtime_error(path + ":" + std::to_string(number) + ": '" + key + "' is not a number");
    }
    records.push_back(std::move(r));
  }
  return records;
}

std::string metrics_json(const std::vector<std::pair<std::string, double>>& fields) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : fields) j[k] = std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
  return j.dump() + "\n";
}

MetricsLog::MetricsLog(std::string path, std::int64_t keep_until_step) : path_(std::move(path)) {
  std::string kept;
  if (keep_until_step > 0 && std::filesystem::exists(path_)) {
    const std::vector<MetricsRecord> records = read_metrics_log(path_);
    std::ifstream in(path_);
    std::size_t i = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const MetricsRecord& r = records.at(i++);
      const auto step = r.find("step");
      if (step != r.end() && step->second <= static_cast<double>(keep_until_step)) kept += line + "\n";
    }
  }
  write_file(path_, kept);
  out_.open(path_, std::ios::app);
  if (!out_) throw std::runtime_error("cannot open " + path_ + " for appending");
}

void MetricsLog::append(const std::vector<std::pair<std::string, double>>& fields) {
  out_ << metrics_json(fields);
  out_.flush();
  if (!out_) throw std::runtime_error("writing " + path_ + " failed");
}

}  // namespace rune::train
