#include "report/html_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "autograd/random.hpp"
#include "train/config.hpp"
#include "train/files.hpp"
#include "train/task.hpp"

namespace rune::report {

namespace fs = std::filesystem;

// The page's style sheet and script, report/html_report.css and report/html_report.js, embedded at
// build time (CMakeLists.txt writes them into a generated source file).
extern const char* const kHtmlReportStyle;
extern const char* const kHtmlReportScript;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// A PNG larger than this is named in the notes instead of embedded: a page of 20 runs stays
// something a browser opens quickly.
constexpr std::uintmax_t kMaxImageBytes = 8u << 20;

// The whole content of a file; std::runtime_error naming it when it cannot be read.
std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot be read");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path.string() + ": cannot be read");
  return s.str();
}

bool is_run_folder(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "config.toml", ec) || fs::is_regular_file(dir / "metrics.jsonl", ec);
}

// A metrics.jsonl line as a record, or nullopt when it is not a JSON object of numbers and nulls.
std::optional<train::MetricsRecord> parse_line(const std::string& line) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  train::MetricsRecord r;
  for (const auto& [key, value] : j.items()) {
    if (value.is_null())
      r[key] = kNaN;
    else if (value.is_number())
      r[key] = value.get<double>();
    else
      return std::nullopt;
  }
  return r;
}

std::string caption_of(const std::string& relative) {
  const fs::path p(relative);
  const std::string file = p.filename().string(), dir = p.parent_path().string();
  auto split_of = [](const std::string& name, const std::string& prefix) { return name.substr(prefix.size()); };
  if (file == "multi_head_attention_map.png") return "every head of every layer over one sentence (rune attention)";
  if (file == "vit_attention_map.png") return "every head's attention over one image (rune attention --image)";
  if (file == "attention_rollout.png") return "attention rollout over one image (rune attention --image)";
  if (file.rfind("confusion-", 0) == 0)
    return "confusion matrix, " + split_of(p.stem().string(), "confusion-") + " split (rune eval)";
  if (dir.rfind("heads-", 0) == 0) return "head analysis, " + split_of(dir, "heads-") + " split (rune heads)";
  if (dir.rfind("align-", 0) == 0) return "word alignment, " + split_of(dir, "align-") + " split (rune align)";
  return "";
}

// The task's primary validation metric and its direction, from a describe-only task (its keys
// read, no data, no model): what the run's best.h5 was chosen by.
void primary_metric_of(const std::string& config_text, const std::string& origin, RunData& run) {
  try {
    train::Config c = train::Config::parse(config_text, origin);
    Generator init, dropout;
    train::TaskContext context;
    context.init = &init;
    context.dropout = &dropout;
    context.describe_only = true;
    const std::unique_ptr<train::Task> task = train::make_task(c, context);
    run.primary_metric = "val_" + task->primary_metric();
    run.primary_direction = task->higher_is_better() ? Direction::higher : Direction::lower;
  } catch (const std::exception&) {
    // a task this build does not know, or a config it reads differently: the name rule decides
  }
}

std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5g", v);
  return buf;
}

std::string format_step(double step) {
  if (!std::isfinite(step) || step != std::floor(step)) return format_value(step);
  return std::to_string(static_cast<long long>(step));
}

Direction direction_for(const RunData& run, const std::string& key) {
  return key == run.primary_metric && run.primary_direction != Direction::unknown ? run.primary_direction
                                                                                  : direction_by_name(key);
}

// A colour per run: Tableau's ten, then hues a golden angle apart (20 runs stay apart).
std::string run_colour(std::size_t i) {
  static const char* const kTen[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  if (i < 10) return kTen[i];
  char buf[40];
  std::snprintf(buf, sizeof buf, "hsl(%d, 65%%, %d%%)", static_cast<int>(std::fmod(i * 137.508, 360.0)),
                i % 2 ? 38 : 52);
  return buf;
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// The data the script draws: per run its name, colour and, per key, [step, time, value] points.
std::string page_data(const std::vector<RunData>& runs) {
  std::set<std::string> keys;
  nlohmann::json j_runs = nlohmann::json::array();
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunData& run = runs[i];
    const std::vector<double> times = record_times(run.records);
    nlohmann::json series = nlohmann::json::object();
    for (std::size_t r = 0; r < run.records.size(); ++r) {
      const train::MetricsRecord& rec = run.records[r];
      const auto step = rec.find("step");
      if (step == rec.end() || !std::isfinite(step->second)) continue;
      for (const auto& [k, v] : rec) {
        if (k == "step") continue;
        keys.insert(k);
        series[k].push_back({step->second, number_or_null(times[r]), number_or_null(v)});
      }
    }
    j_runs.push_back({{"name", run.name}, {"color", run_colour(i)}, {"series", series}});
  }
  // training keys first (as logged: loss first), then the validation ones
  std::vector<std::string> ordered;
  for (const char* k : {"loss", "lr", "grad_norm", "items_per_s", "epoch", "elapsed_s", "threads"})
    if (keys.count(k)) ordered.push_back(k);
  for (const std::string& k : keys)
    if (k.rfind("val_", 0) != 0 && std::find(ordered.begin(), ordered.end(), k) == ordered.end()) ordered.push_back(k);
  for (const std::string& k : keys)
    if (k.rfind("val_", 0) == 0) ordered.push_back(k);
  const std::string first = keys.count("loss") ? "loss" : ordered.empty() ? "" : ordered.front();
  nlohmann::json data{{"runs", j_runs}, {"keys", ordered}, {"default", first}};
  return json_for_script(data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void metrics_table(std::ostringstream& h, const std::vector<RunData>& runs) {
  std::set<std::string> val_keys;
  for (const RunData& run : runs)
    for (const train::MetricsRecord& r : run.records)
      for (const auto& [k, v] : r)
        if (k.rfind("val_", 0) == 0) val_keys.insert(k);
  // each key's direction: the task's where a run's task names it its primary metric
  std::map<std::string, Direction> direction;
  for (const std::string& k : val_keys) {
    direction[k] = direction_by_name(k);
    for (const RunData& run : runs)
      if (run.primary_metric == k && run.primary_direction != Direction::unknown) direction[k] = run.primary_direction;
  }
  std::map<std::string, std::vector<MetricSummary>> summaries;
  for (const std::string& k : val_keys)
    for (const RunData& run : runs) summaries[k].push_back(summarize(run.records, k, direction_for(run, k)));
  // the best value of each column, over the runs (every run that reaches it is marked)
  std::map<std::string, double> top;
  for (const std::string& k : val_keys) {
    if (direction[k] == Direction::unknown) continue;
    for (const MetricSummary& s : summaries[k])
      if (s.best_value &&
          (!top.count(k) || (direction[k] == Direction::higher ? *s.best_value > top[k] : *s.best_value < top[k])))
        top[k] = *s.best_value;
  }
  h << "<section id=\"metrics\">\n<h2>Final and best metrics</h2>\n";
  h << "<p class=\"hint\">Final: the last value logged. Best: the highest or lowest validation value by the "
       "metric's direction (&uarr; higher is better, &darr; lower; the task's own for its primary metric, marked "
       "&#9733;); the best value of each column is in bold.</p>\n";
  // two header rows: each metric over its final and best columns
  h << "<div class=\"scroll\"><table class=\"metrics\">\n<thead><tr><th rowspan=\"2\">run</th><th rowspan=\"2\">last "
       "step</th><th rowspan=\"2\">elapsed</th><th rowspan=\"2\">final loss</th>";
  for (const std::string& k : val_keys) {
    bool primary = false;
    for (const RunData& run : runs) primary = primary || run.primary_metric == k;
    const char* arrow = direction[k] == Direction::higher  ? " &uarr;"
                        : direction[k] == Direction::lower ? " &darr;"
                                                           : "";
    h << "<th colspan=\"2\">" << html_escape(k) << arrow << (primary ? " &#9733;" : "") << "</th>";
  }
  h << "</tr>\n<tr>";
  for (std::size_t i = 0; i < val_keys.size(); ++i) h << "<th>final</th><th>best (step)</th>";
  h << "</tr></thead>\n<tbody>\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunData& run = runs[i];
    double last_step = kNaN, elapsed = kNaN;
    for (const train::MetricsRecord& r : run.records) {
      if (auto s = r.find("step"); s != r.end()) last_step = s->second;
      if (auto e = r.find("elapsed_s"); e != r.end()) elapsed = e->second;
    }
    const MetricSummary loss = summarize(run.records, "loss", Direction::lower);
    h << "<tr><td class=\"run\"><span class=\"swatch\" style=\"background:" << run_colour(i) << "\"></span>"
      << html_escape(run.name) << "</td><td>" << (std::isnan(last_step) ? "&ndash;" : format_step(last_step))
      << "</td><td>" << (std::isnan(elapsed) ? "&ndash;" : html_escape(train::duration(elapsed))) << "</td><td>"
      << (loss.final_value ? format_value(*loss.final_value) : "&ndash;") << "</td>";
    for (const std::string& k : val_keys) {
      const MetricSummary& s = summaries[k][i];
      h << "<td>" << (s.final_value ? format_value(*s.final_value) : "&ndash;") << "</td>";
      const bool is_top = top.count(k) && s.best_value && *s.best_value == top[k];
      h << "<td" << (is_top ? " class=\"top\"" : "") << ">";
      if (s.best_value)
        h << format_value(*s.best_value) << " <small>(" << format_step(s.best_step) << ")</small>";
      else
        h << "&ndash;";
      h << "</td>";
    }
    h << "</tr>\n";
  }
  h << "</tbody></table></div>\n";
  if (val_keys.empty()) h << "<p class=\"note\">No run has a validation line yet.</p>\n";
  h << "</section>\n";
}

void evaluations_table(std::ostringstream& h, const std::vector<RunData>& runs) {
  std::set<std::string> keys;
  for (const RunData& run : runs)
    for (const RunEvaluation& e : run.evaluations)
      for (const auto& [k, v] : e.metrics)
        if (k != "step") keys.insert(k);
  bool any = false;
  for (const RunData& run : runs) any = any || !run.evaluations.empty();
  if (!any) return;
  h << "<section id=\"evaluations\">\n<h2>Evaluations</h2>\n<p class=\"hint\">Each run's eval-&lt;split&gt;.json, "
       "written by rune eval.</p>\n<div class=\"scroll\"><table>\n<thead><tr><th>run</th><th>split</th><th>step</th>";
  for (const std::string& k : keys) h << "<th>" << html_escape(k) << "</th>";
  h << "</tr></thead>\n<tbody>\n";
  for (const RunData& run : runs)
    for (const RunEvaluation& e : run.evaluations) {
      const auto step = e.metrics.find("step");
      h << "<tr><td class=\"run\">" << html_escape(run.name) << "</td><td>" << html_escape(e.split) << "</td><td>"
        << (step == e.metrics.end() ? "&ndash;" : format_step(step->second)) << "</td>";
      for (const std::string& k : keys) {
        const auto v = e.metrics.find(k);
        h << "<td>" << (v == e.metrics.end() ? "&ndash;" : format_value(v->second)) << "</td>";
      }
      h << "</tr>\n";
    }
  h << "</tbody></table></div>\n</section>\n";
}

void config_table(std::ostringstream& h, const std::vector<RunData>& runs) {
  std::vector<std::map<std::string, std::string>> configs;
  std::set<std::string> keys;
  for (const RunData& run : runs) {
    configs.emplace_back(run.config.begin(), run.config.end());
    for (const auto& [k, v] : run.config) keys.insert(k);
  }
  std::vector<std::string> differ, same;
  for (const std::string& k : keys) {
    bool differs = false;
    const std::map<std::string, std::string>& first = configs.front();
    for (const auto& c : configs) {
      const auto a = first.find(k), b = c.find(k);
      const bool has_a = a != first.end(), has_b = b != c.end();
      differs = differs || has_a != has_b || (has_a && a->second != b->second);
    }
    (differs ? differ : same).push_back(k);
  }
  h << "<section id=\"config\">\n<h2>Configs</h2>\n<p class=\"hint\">Each run's resolved config.toml, flattened. ";
  if (runs.size() < 2)
    h << "One run: nothing to compare.";
  else if (differ.empty())
    h << "Every key is the same in every run.";
  else
    h << differ.size() << (differ.size() == 1 ? " key differs" : " keys differ")
      << " between the runs: highlighted and listed first (&ndash; where a run lacks the key).";
  h << "</p>\n<div class=\"scroll\"><table class=\"config\">\n<thead><tr><th>key</th>";
  for (std::size_t i = 0; i < runs.size(); ++i)
    h << "<th><span class=\"swatch\" style=\"background:" << run_colour(i) << "\"></span>" << html_escape(runs[i].name)
      << "</th>";
  h << "</tr></thead>\n<tbody>\n";
  auto rows = [&](const std::vector<std::string>& ks, bool differs) {
    for (const std::string& k : ks) {
      h << "<tr" << (differs ? " class=\"differs\"" : "") << "><th scope=\"row\">" << html_escape(k) << "</th>";
      for (const auto& c : configs) {
        const auto v = c.find(k);
        h << "<td>" << (v == c.end() ? "&ndash;" : html_escape(v->second)) << "</td>";
      }
      h << "</tr>\n";
    }
  };
  rows(differ, true);
  rows(same, false);
  h << "</tbody></table></div>\n</section>\n";
}

void notes_section(std::ostringstream& h, const std::vector<RunData>& runs) {
  bool any = false;
  for (const RunData& run : runs) any = any || !run.notes.empty();
  if (!any) return;
  h << "<section id=\"notes\">\n<h2>Notes</h2>\n<ul>\n";
  for (const RunData& run : runs)
    for (const std::string& note : run.notes)
      h << "<li><b>" << html_escape(run.name) << "</b>: " << html_escape(note) << "</li>\n";
  h << "</ul>\n</section>\n";
}

void images_section(std::ostringstream& h, const std::vector<RunData>& runs) {
  h << "<section id=\"images\">\n<h2>Pictures</h2>\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunData& run = runs[i];
    h << "<div class=\"run-images\"><h3><span class=\"swatch\" style=\"background:" << run_colour(i) << "\"></span>"
      << html_escape(run.name) << "</h3>\n";
    if (run.images.empty())
      h << "<p class=\"note\">No pictures yet (rune attention, rune eval, rune heads and rune align add them).</p>\n";
    for (const RunImage& image : run.images) {
      h << "<figure><img title=\"click: full size\" alt=\"" << html_escape(image.path)
        << "\" src=\"data:image/png;base64," << base64(image.png) << "\"><figcaption><code>" << html_escape(image.path)
        << "</code>" << (image.caption.empty() ? "" : ": " + html_escape(image.caption)) << "</figcaption></figure>\n";
    }
    h << "</div>\n";
  }
  h << "</section>\n";
}

}  // namespace

std::string base64(const std::string& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8 |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string json_for_script(const std::string& dumped_json) {
  // <, > and & stand only inside JSON strings, where \uXXXX means the same character
  std::string out;
  out.reserve(dumped_json.size());
  for (std::size_t i = 0; i < dumped_json.size(); ++i) {
    const char ch = dumped_json[i];
    if (ch == '<')
      out += "\\u003c";
    else if (ch == '>')
      out += "\\u003e";
    else if (ch == '&')
      out += "\\u0026";
    else if (ch == '\xE2' && i + 2 < dumped_json.size() && dumped_json[i + 1] == '\x80' &&
             (dumped_json[i + 2] == '\xA8' || dumped_json[i + 2] == '\xA9')) {
      out += dumped_json[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";  // line separators old parsers choke on
      i += 2;
    } else {
      out += ch;
    }
  }
  return out;
}

Direction direction_by_name(const std::string& metric) {
  const std::string m = metric.rfind("val_", 0) == 0 ? metric.substr(4) : metric;
  auto has = [&](const char* part) { return m.find(part) != std::string::npos; };
  // lower first: "error" must not read as a kind of accuracy, nor "loss" hide in another name
  if (has("loss") || has("perplexity") || m == "ppl" || has("bits_per") || m == "bpc" || has("error") || m == "aer")
    return Direction::lower;
  if (has("accuracy") || has("exact_match") || has("bleu") || has("chrf") || m == "f1" || has("precision") ||
      has("recall"))
    return Direction::higher;
  return Direction::unknown;
}

std::vector<RunFolder> run_folders(const std::vector<std::string>& paths) {
  std::vector<RunFolder> folders;
  auto name_of = [](const std::string& path) {
    const fs::path p = fs::path(path).lexically_normal();
    const std::string name = p.filename().string();
    return name.empty() ? p.parent_path().filename().string() : name;  // "runs/a/" ends in an empty name
  };
  for (const std::string& path : paths) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (!fs::exists(status)) throw std::runtime_error(path + ": no such run folder");
    if (!fs::is_directory(status)) throw std::runtime_error(path + ": not a folder (a run folder is wanted)");
    if (is_run_folder(path)) {
      folders.push_back({path, name_of(path)});
      continue;
    }
    std::vector<std::string> runs;
    fs::directory_iterator it(path, ec);
    if (ec) throw std::runtime_error(path + ": cannot be read: " + ec.message());
    for (const fs::directory_entry& e : it)
      if (e.is_directory(ec) && is_run_folder(e.path())) runs.push_back(e.path().string());
    if (runs.empty())
      throw std::runtime_error(path +
                               ": neither a run folder (no config.toml or metrics.jsonl) nor a sweep folder (no "
                               "subfolder is a run)");
    std::sort(runs.begin(), runs.end());
    for (const std::string& run : runs) folders.push_back({run, name_of(path) + "/" + name_of(run)});
  }
  std::map<std::string, int> uses;
  for (const RunFolder& f : folders) ++uses[f.name];
  for (RunFolder& f : folders)
    if (uses[f.name] > 1) f.name = f.path;
  return folders;
}

RunData read_run(const std::string& folder, const std::string& name) {
  RunData run;
  run.folder = folder;
  const fs::path dir(folder);
  std::error_code ec;
  if (!name.empty()) {
    run.name = name;
  } else {
    const fs::path p = dir.lexically_normal();
    run.name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
  }
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(folder + ": no such run folder");

  // config.toml
  const fs::path config = dir / "config.toml";
  if (fs::exists(config, ec)) {
    const std::string text = read_bytes(config);
    try {
      run.config = train::Config::parse(text, config.string()).given_values();
      primary_metric_of(text, config.string(), run);
    } catch (const std::exception& e) {
      run.notes.push_back("config.toml is not a config this build reads (" + std::string(e.what()) + ")");
    }
  } else {
    run.notes.push_back("no config.toml");
  }

  // metrics.jsonl: a line that is not a JSON object of numbers is skipped, named in the notes
  const fs::path metrics = dir / "metrics.jsonl";
  if (fs::exists(metrics, ec)) {
    std::istringstream in(read_bytes(metrics));
    int number = 0;
    for (std::string line; std::getline(in, line);) {
      ++number;
      if (line.empty()) continue;
      if (std::optional<train::MetricsRecord> r = parse_line(line))
        run.records.push_back(std::move(*r));
      else
        run.notes.push_back("metrics.jsonl:" + std::to_string(number) +
                            " skipped: not a JSON object of numbers (a line being written?)");
    }
    bool validated = false;
    for (const train::MetricsRecord& r : run.records)
      for (const auto& [k, v] : r) validated = validated || k.rfind("val_", 0) == 0;
    if (!validated) run.notes.push_back("no validation line yet");
  } else {
    run.notes.push_back("no metrics.jsonl");
  }

  // eval-<split>.json, and every PNG below the folder but checkpoints/ and curves.png
  std::vector<fs::path> pngs, evals;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw std::runtime_error(folder + ": cannot be read: " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path rel = it->path().lexically_relative(dir);
    if (it->is_directory(ec) && rel == "checkpoints") {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    const std::string file = rel.filename().string();
    if (rel.extension() == ".png" && rel != "curves.png") pngs.push_back(rel);
    if (rel.parent_path().empty() && file.rfind("eval-", 0) == 0 && rel.extension() == ".json") evals.push_back(rel);
  }
  if (ec) run.notes.push_back("some files below the folder could not be listed: " + ec.message());
  std::sort(pngs.begin(), pngs.end());
  std::sort(evals.begin(), evals.end());
  for (const fs::path& rel : evals) {
    const std::optional<train::MetricsRecord> r = parse_line(read_bytes(dir / rel));
    const std::string stem = rel.stem().string();
    if (r)
      run.evaluations.push_back({stem.substr(5), *r});
    else
      run.notes.push_back(rel.string() + " skipped: not a JSON object of numbers");
  }
  for (const fs::path& rel : pngs) {
    const std::uintmax_t size = fs::file_size(dir / rel, ec);
    if (!ec && size > kMaxImageBytes) {
      run.notes.push_back(rel.string() + " left out: " + std::to_string(size >> 20) + " MB");
      continue;
    }
    std::string bytes;
    try {
      bytes = read_bytes(dir / rel);
    } catch (const std::exception& e) {
      run.notes.push_back(e.what());
      continue;
    }
    if (bytes.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) != 0) {
      run.notes.push_back(rel.string() + " left out: not a PNG file");
      continue;
    }
    run.images.push_back({rel.generic_string(), caption_of(rel.generic_string()), std::move(bytes)});
  }
  return run;
}

std::vector<double> record_times(const std::vector<train::MetricsRecord>& records) {
  // (step, elapsed_s) of the lines that have both, in step order
  std::vector<std::pair<double, double>> known;
  for (const train::MetricsRecord& r : records) {
    const auto s = r.find("step"), e = r.find("elapsed_s");
    if (s != r.end() && e != r.end() && std::isfinite(s->second) && std::isfinite(e->second))
      known.emplace_back(s->second, e->second);
  }
  std::stable_sort(known.begin(), known.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<double> times;
  for (const train::MetricsRecord& r : records) {
    if (const auto e = r.find("elapsed_s"); e != r.end()) {
      times.push_back(e->second);
      continue;
    }
    const auto s = r.find("step");
    if (known.empty() || s == r.end() || !std::isfinite(s->second)) {
      times.push_back(kNaN);
      continue;
    }
    const double step = s->second;
    double t;
    // the last training line at or before the step, and the first after it
    const auto after = std::upper_bound(known.begin(), known.end(), step,
                                        [](double v, const std::pair<double, double>& p) { return v < p.first; });
    if (after == known.begin())
      t = known.front().second * step / std::max(known.front().first, 1.0);  // before the first line: from 0
    else if (after == known.end() || std::prev(after)->first == step)
      t = std::prev(after)->second;
    else {
      const auto before = std::prev(after);
      t = before->second + (after->second - before->second) * (step - before->first) / (after->first - before->first);
    }
    const auto eval = r.find("eval_s");
    times.push_back(t + (eval != r.end() && std::isfinite(eval->second) ? eval->second : 0.0));
  }
  return times;
}

MetricSummary summarize(const std::vector<train::MetricsRecord>& records, const std::string& key, Direction direction) {
  MetricSummary s;
  for (const train::MetricsRecord& r : records) {
    const auto v = r.find(key);
    if (v == r.end() || !std::isfinite(v->second)) continue;
    const auto step = r.find("step");
    const double at = step == r.end() ? kNaN : step->second;
    s.final_value = v->second;
    s.final_step = at;
    // of equal values the later, as best.h5 is chosen
    const bool better = !s.best_value || (direction == Direction::higher && v->second >= *s.best_value) ||
                        (direction == Direction::lower && v->second <= *s.best_value);
    if (direction != Direction::unknown && better) {
      s.best_value = v->second;
      s.best_step = at;
    }
  }
  return s;
}

std::string html_report(const std::vector<RunData>& runs, const std::string& title) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<meta name=\"generator\" content=\"rune report (Runestone)\">\n<title>"
    << html_escape(title) << "</title>\n<style>\n"
    << kHtmlReportStyle << "</style>\n</head>\n<body>\n";
  // first, so that an error anywhere in the page's script shows on the page
  h << "<div id=\"errors\" role=\"alert\"></div>\n<script>\nwindow.addEventListener(\"error\", function (e) {\n"
       "  var box = document.getElementById(\"errors\");\n"
       "  box.textContent += \"script error: \" + e.message + \" (line \" + e.lineno + \")\\n\";\n});\n</script>\n";
  h << "<header><h1>" << html_escape(title) << "</h1>\n<p class=\"hint\">" << runs.size()
    << (runs.size() == 1 ? " run" : " runs") << ", written by <code>rune report</code>.</p></header>\n";

  h << "<section id=\"curves\">\n<h2>Curves</h2>\n<div class=\"controls\">\n"
       "<label>metric <select id=\"metric\"></select></label>\n"
       "<span class=\"group\">x axis <label><input type=\"radio\" name=\"x-axis\" value=\"step\" checked> "
       "step</label> <label><input type=\"radio\" name=\"x-axis\" value=\"time\"> elapsed time</label></span>\n"
       "<label>smoothing <input type=\"range\" id=\"smoothing\" min=\"0\" max=\"0.99\" step=\"0.01\" value=\"0.6\"> "
       "<output id=\"smoothing-value\">0.60</output></label>\n"
       "<label><input type=\"checkbox\" id=\"log-y\"> log y</label>\n</div>\n"
       "<canvas id=\"chart\"></canvas>\n<div id=\"readout\">&nbsp;</div>\n<ul id=\"legend\">\n";
  for (std::size_t i = 0; i < runs.size(); ++i)
    h << "<li data-run=\"" << i << "\"><span class=\"swatch\" style=\"background:" << run_colour(i) << "\"></span>"
      << html_escape(runs[i].name) << "</li>\n";
  h << "</ul>\n<p class=\"hint\">Solid: the chosen metric; dashed: its training or validation twin (loss and "
       "val_loss). Smoothing is TensorBoard's debiased exponential moving average, the raw values faint behind it. "
       "Click a run in the legend to hide it.</p>\n</section>\n";

  metrics_table(h, runs);
  evaluations_table(h, runs);
  config_table(h, runs);
  notes_section(h, runs);
  images_section(h, runs);

  h << "<script type=\"application/json\" id=\"rune-data\">" << page_data(runs) << "</script>\n<script>\n"
    << kHtmlReportScript << "</script>\n</body>\n</html>\n";
  return h.str();
}

void write_html_report(const std::string& path, const std::vector<RunData>& runs, const std::string& title) {
  train::write_file(path, html_report(runs, title), "report");
}

}  // namespace rune::report
