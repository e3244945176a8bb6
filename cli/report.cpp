// rune report RUN [RUN ...] --out FILE.html: one self-contained HTML page comparing runs (their
// curves, configs, metrics and pictures; report/html_report.hpp). A sweep folder stands for its
// runs. A folder that is neither, or cannot be read, is an error naming it (exit 1).
#include <cstdio>
#include <filesystem>

#include "cli/command.hpp"
#include "report/html_report.hpp"
#include "train/files.hpp"

namespace rune::cli {

namespace {

int report_runs(const std::vector<std::string>& paths, const std::string& out, const std::string& title) {
  std::vector<report::RunData> runs;
  for (const report::RunFolder& folder : report::run_folders(paths)) {
    runs.push_back(report::read_run(folder.path, folder.name));
    for (const std::string& note : runs.back().notes)
      std::fprintf(stderr, "%s: %s\n", folder.path.c_str(), note.c_str());
  }
  const std::string page = report::html_report(runs, title);
  if (const std::filesystem::path parent = std::filesystem::path(out).parent_path(); !parent.empty())
    std::filesystem::create_directories(parent);
  train::write_file(out, page, "report");
  std::printf("wrote %s: %zu run%s, %.1f kB\n", out.c_str(), runs.size(), runs.size() == 1 ? "" : "s",
              static_cast<double>(page.size()) / 1024);
  return 0;
}

}  // namespace

Command add_report(CLI::App& app) {
  auto paths = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto title = std::make_shared<std::string>("Runestone report");
  CLI::App* c = app.add_subcommand(
      "report", "Write one self-contained HTML page comparing runs: curves, configs, metrics and pictures");
  c->add_option("runs", *paths, "Run folders, or sweep folders (a folder of runs)")->required();
  c->add_option("--out", *out, "The HTML file to write")->required();
  c->add_option("--title", *title, "The page's title");
  return {c, [=] { return report_runs(*paths, *out, *title); }};
}

}  // namespace rune::cli
