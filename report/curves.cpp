#include "report/curves.hpp"

#include <map>

#include "report/plot.hpp"
#include "train/metrics_log.hpp"

namespace rune::report {

std::string draw_run_curves(const std::string& folder, const std::string& title) {
  Series loss{"train", {}}, val_loss{"val loss", {}};
  std::map<std::string, Series> val;
  for (const train::MetricsRecord& r : train::read_metrics_log(folder + "/metrics.jsonl")) {
    const auto step = r.find("step");
    if (step == r.end()) continue;
    for (const auto& [k, v] : r) {
      if (k == "loss")
        loss.points.emplace_back(step->second, v);
      else if (k == "val_loss")
        val_loss.points.emplace_back(step->second, v);
      else if (k.rfind("val_", 0) == 0)
        val[k].points.emplace_back(step->second, v);
    }
  }
  std::vector<Series> metrics;
  for (const auto& [k, s] : val) metrics.push_back({k.substr(4), s.points});
  const std::string path = folder + "/curves.png";
  plot_curves(path, title, loss, val_loss, metrics);
  return path;
}

}  // namespace rune::report
