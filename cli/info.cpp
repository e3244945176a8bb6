// rune info CKPT: a checkpoint's step, metrics, metadata, architecture, parameters and config.
#include <algorithm>
#include <cstdio>
#include <string>
#include <variant>

#include "cli/command.hpp"
#include "train/format.hpp"
#include "train/trainer.hpp"

namespace rune::cli {

namespace {

int info(const std::string& checkpoint) {
  const train::Checkpoint c = train::read_checkpoint(checkpoint);
  std::printf("%s: %s version %lld\n", checkpoint.c_str(), train::kCheckpointFormat,
              static_cast<long long>(train::kCheckpointVersion));
  std::printf("step %lld, epoch %lld, optimizer %s (%lld steps)\n", static_cast<long long>(c.step),
              static_cast<long long>(c.epoch), c.optimizer.empty() ? "none" : c.optimizer.c_str(),
              static_cast<long long>(c.optimizer_steps));
  if (!c.metrics.empty()) std::printf("metrics: %s\n", train::format_metrics(c.metrics, "").c_str());
  for (const auto& [k, v] : c.meta_strings) std::printf("meta %s: %zu entries\n", k.c_str(), v.size());
  for (const auto& [k, v] : c.meta_bytes) std::printf("meta %s: %zu bytes\n", k.c_str(), v.size());
  for (const auto& [k, v] : c.meta_numbers) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : ", ") + train::significant(x);
    std::printf("meta %s: [%s]\n", k.c_str(), s.c_str());
  }
  if (!c.architecture.empty()) {
    // how to compute with the parameters (docs/checkpoints.md): numbers bare, text quoted
    const auto number = [](double d) {  // the fewest digits that read back exactly
      std::string s = train::significant(d, 15);
      for (int digits = 16; digits <= 17 && std::stod(s) != d; ++digits) s = train::significant(d, digits);
      return s;
    };
    std::printf("architecture:\n");
    for (const auto& [k, v] : c.architecture) {
      const std::string value = std::holds_alternative<std::int64_t>(v) ? std::to_string(std::get<std::int64_t>(v))
                                : std::holds_alternative<double>(v)     ? number(std::get<double>(v))
                                                                        : "\"" + std::get<std::string>(v) + "\"";
      std::printf("  %s = %s\n", k.c_str(), value.c_str());
    }
  }
  std::size_t width = 9;
  for (const auto& [name, t] : c.params) width = std::max(width, name.size());
  std::printf("\n%-*s  %-16s %10s\n", static_cast<int>(width), "parameter", "shape", "count");
  std::int64_t total = 0;
  for (const auto& [name, t] : c.params) {
    std::printf("%-*s  %-16s %10lld\n", static_cast<int>(width), name.c_str(), shape_str(t.shape()).c_str(),
                static_cast<long long>(t.numel()));
    total += t.numel();
  }
  std::printf("%-*s  %-16s %10lld\n\nconfig:\n%s", static_cast<int>(width), "total", "", static_cast<long long>(total),
              c.config.c_str());
  return 0;
}

}  // namespace

Command add_info(CLI::App& app) {
  auto checkpoint = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand("info", "Print a checkpoint's step, metrics, architecture, parameters and config");
  add_checkpoint_argument(*c, *checkpoint);
  return {c, [checkpoint] { return info(*checkpoint); }};
}

}  // namespace rune::cli
