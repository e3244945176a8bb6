#include "train/sweep.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/files.hpp"
#include "train/format.hpp"
#include "train/sha256.hpp"
#include "train/trainer.hpp"

namespace rune::train {
namespace fs = std::filesystem;

namespace {

// The keys the sweep sets itself on every run.
const std::vector<std::string> kSweepKeys = {"run.dir", "run.name"};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read it");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// "a=1,b=2": a combination as a person reads it (the values as given).
std::string combination_text(const std::vector<GridAxis>& grid, const std::vector<std::string>& values) {
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < grid.size(); ++i) parts.push_back(grid[i].key + "=" + values[i]);
  return parts.empty() ? "(no --grid)" : join(parts, ",");
}

}  // namespace

GridAxis parse_grid(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos)
    throw std::invalid_argument("--grid " + spec + ": expected key=value1,value2,... (no '=')");
  GridAxis axis;
  axis.key = trim(spec.substr(0, eq));
  if (axis.key.empty()) throw std::invalid_argument("--grid " + spec + ": the key before '=' is empty");
  // commas inside [...], {...} or quotes belong to the value (TOML arrays and strings)
  const std::string list = spec.substr(eq + 1);
  int depth = 0;
  char quote = 0;
  std::string current;
  const auto push = [&] {
    const std::string v = trim(current);
    if (v.empty()) throw std::invalid_argument("--grid " + spec + ": an empty value (values are separated by commas)");
    if (std::find(axis.values.begin(), axis.values.end(), v) != axis.values.end())
      throw std::invalid_argument("--grid " + spec + ": the value " + v + " is given twice");
    axis.values.push_back(v);
    current.clear();
  };
  for (const char ch : list) {
    if (quote) {
      if (ch == quote) quote = 0;
    } else if (ch == '"' || ch == '\'') {
      quote = ch;
    } else if (ch == '[' || ch == '{') {
      ++depth;
    } else if ((ch == ']' || ch == '}') && depth > 0) {
      --depth;
    } else if (ch == ',' && depth == 0) {
      push();
      continue;
    }
    current += ch;
  }
  if (quote || depth) throw std::invalid_argument("--grid " + spec + ": an unclosed quote or bracket");
  push();
  return axis;
}

void check_grid(const std::vector<GridAxis>& grid) {
  std::set<std::string> seen;
  for (const GridAxis& a : grid) {
    if (!seen.insert(a.key).second)
      throw std::invalid_argument("--grid " + a.key + " is given twice: give all its values in one --grid");
    if (std::find(kSweepKeys.begin(), kSweepKeys.end(), a.key) != kSweepKeys.end())
      throw std::invalid_argument("--grid " + a.key + ": the sweep names each run's folder itself (--out names the " +
                                  "sweep's folder)");
  }
}

std::vector<std::vector<std::string>> combinations(const std::vector<GridAxis>& grid) {
  std::vector<std::vector<std::string>> out{{}};
  for (const GridAxis& a : grid) {
    std::vector<std::vector<std::string>> next;
    for (const auto& prefix : out)
      for (const std::string& v : a.values) {
        next.push_back(prefix);
        next.back().push_back(v);
      }
    out = std::move(next);
  }
  return out;
}

std::vector<std::uint64_t> sweep_seeds(std::uint64_t base, int count) {
  if (count < 1) throw std::invalid_argument("--seeds " + std::to_string(count) + ": must be at least 1");
  std::vector<std::uint64_t> seeds;
  for (int i = 0; i < count; ++i) seeds.push_back(base + static_cast<std::uint64_t>(i));
  return seeds;
}

std::string run_name(const std::vector<GridAxis>& grid, const std::vector<std::string>& values, std::uint64_t seed,
                     bool with_seed) {
  // a key or value keeps letters, digits and ._+-: '=' and ',' then say where each begins
  const auto clean = [](std::string s) {
    for (char& ch : s)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("._+-", ch))) ch = '_';
    return s;
  };
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < grid.size(); ++i) {
    std::string v = values.at(i);
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    parts.push_back(clean(grid[i].key) + "=" + clean(v));
  }
  if (with_seed) parts.push_back("seed=" + std::to_string(seed));
  return join(parts, ",");
}

std::vector<SweepRun> expand_runs(const std::vector<GridAxis>& grid, const std::vector<std::uint64_t>& seeds) {
  const auto seed_axis = std::find_if(grid.begin(), grid.end(), [](const GridAxis& a) { return a.key == "seed"; });
  const bool sweeps_seed = seed_axis != grid.end();
  if (sweeps_seed && seeds.size() != 1)
    throw std::invalid_argument("--grid seed=... and --seeds " + std::to_string(seeds.size()) +
                                ": the grid gives the seeds; leave out --seeds");
  const auto combos = combinations(grid);
  std::vector<SweepRun> runs;
  std::map<std::string, std::string> names;  // name -> the combination that took it
  for (std::size_t c = 0; c < combos.size(); ++c) {
    std::vector<std::uint64_t> own = seeds;
    if (sweeps_seed) {
      const std::string& v = combos[c][static_cast<std::size_t>(seed_axis - grid.begin())];
      char* end = nullptr;
      errno = 0;
      const unsigned long long s = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end || errno || v.front() == '-')
        throw std::invalid_argument("--grid seed: " + v + " is not a seed (an integer >= 0)");
      own = {static_cast<std::uint64_t>(s)};
    }
    for (const std::uint64_t seed : own) {
      SweepRun r{c, combos[c], seed, run_name(grid, combos[c], seed, !sweeps_seed)};
      const std::string what = combination_text(grid, combos[c]) + " seed " + std::to_string(seed);
      const auto [it, fresh] = names.emplace(r.name, what);
      if (!fresh)
        throw std::invalid_argument("the runs " + it->second + " and " + what + " would share the folder name " +
                                    r.name + ": give values that differ in letters, digits or ._+-");
      runs.push_back(std::move(r));
    }
  }
  return runs;
}

// ------------------------------------------------------------------------- the manifest

std::string manifest_json(const SweepManifest& m) {
  nlohmann::ordered_json j;
  j["config"] = m.config;
  j["config_sha256"] = m.config_sha256;
  j["sets"] = m.sets;
  j["grid"] = nlohmann::ordered_json::array();
  for (const GridAxis& a : m.grid) j["grid"].push_back({{"key", a.key}, {"values", a.values}});
  j["seeds"] = m.seeds;
  j["metric"] = m.metric;
  j["higher_is_better"] = m.higher_is_better;
  j["runs"] = nlohmann::ordered_json::array();
  for (const RunState& r : m.runs) {
    nlohmann::ordered_json run{{"name", r.name}, {"status", r.status}};
    if (r.status == "failed") run["exit_code"] = r.exit_code;
    j["runs"].push_back(run);
  }
  return j.dump(2) + "\n";
}

SweepManifest parse_manifest(const std::string& text, const std::string& origin) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error(origin + ": not a JSON object (a sweep manifest)");
  try {
    SweepManifest m;
    m.config = j.at("config").get<std::string>();
    m.config_sha256 = j.at("config_sha256").get<std::string>();
    m.sets = j.at("sets").get<std::vector<std::string>>();
    for (const auto& a : j.at("grid"))
      m.grid.push_back({a.at("key").get<std::string>(), a.at("values").get<std::vector<std::string>>()});
    m.seeds = j.at("seeds").get<std::vector<std::uint64_t>>();
    m.metric = j.at("metric").get<std::string>();
    m.higher_is_better = j.at("higher_is_better").get<bool>();
    for (const auto& r : j.at("runs"))
      m.runs.push_back({r.at("name").get<std::string>(), r.at("status").get<std::string>(), r.value("exit_code", 0)});
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(origin + ": not a sweep manifest (" + e.what() + ")");
  }
}

std::string manifest_difference(const SweepManifest& existing, const SweepManifest& wanted) {
  const auto grid_text = [](const std::vector<GridAxis>& grid) {
    std::vector<std::string> parts;
    for (const GridAxis& a : grid) parts.push_back("--grid " + a.key + "=" + join(a.values, ","));
    return parts.empty() ? std::string("no --grid") : join(parts, " ");
  };
  const auto seeds_text = [](const std::vector<std::uint64_t>& seeds) {
    std::vector<std::string> parts;
    for (const std::uint64_t s : seeds) parts.push_back(std::to_string(s));
    return join(parts, ", ");
  };
  const auto sets_text = [](const std::vector<std::string>& sets) {
    return sets.empty() ? std::string("none") : join(sets, " ");
  };
  if (grid_text(existing.grid) != grid_text(wanted.grid))
    return "its grid is " + grid_text(existing.grid) + ", this command's " + grid_text(wanted.grid);
  if (existing.seeds != wanted.seeds)
    return "its seeds are " + seeds_text(existing.seeds) + ", this command's " + seeds_text(wanted.seeds);
  if (existing.sets != wanted.sets)
    return "its --set overrides are " + sets_text(existing.sets) + ", this command's " + sets_text(wanted.sets);
  if (existing.config_sha256 != wanted.config_sha256)
    return "it was started from " + existing.config + " as it was then, and " + wanted.config +
           " differs from it now (SHA-256 " + existing.config_sha256.substr(0, 12) + "... against " +
           wanted.config_sha256.substr(0, 12) + "...)";
  return "";
}

// ------------------------------------------------------------------------- results

RunResult run_result(const std::vector<MetricsRecord>& log, const std::string& metric, bool higher_is_better) {
  RunResult r;
  const std::string key = "val_" + metric;
  double session = 0;  // the current session's last elapsed_s
  for (const MetricsRecord& rec : log) {
    if (const auto e = rec.find("elapsed_s"); e != rec.end() && std::isfinite(e->second)) {
      if (e->second < session) r.time_s += session;  // a resumed session starts from 0 again
      session = e->second;
    }
    const auto v = rec.find(key);
    if (v == rec.end() || !std::isfinite(v->second)) continue;
    // of equal values the later, as best.h5 is chosen
    if (!r.has_metric || (higher_is_better ? v->second >= r.best : v->second <= r.best)) {
      r.best = v->second;
      const auto step = rec.find("step");
      r.best_step = step == rec.end() ? 0 : static_cast<std::int64_t>(step->second);
    }
    r.has_metric = true;
  }
  r.time_s += session;
  return r;
}

std::vector<SweepRow> summarise(const std::vector<std::vector<std::string>>& combinations,
                                const std::vector<RunOutcome>& outcomes) {
  std::vector<SweepRow> rows(combinations.size());
  for (std::size_t c = 0; c < combinations.size(); ++c) rows[c].values = combinations[c];
  std::vector<double> time_sum(combinations.size(), 0.0);
  for (const RunOutcome& o : outcomes) {
    if (o.combination >= rows.size())
      throw std::invalid_argument("summarise: a run of combination " + std::to_string(o.combination) + " of " +
                                  std::to_string(rows.size()));
    SweepRow& row = rows[o.combination];
    ++row.runs;
    if (o.status == "done" && o.result.has_metric) {
      ++row.done;
      row.metric.emplace_back(o.seed, o.result.best);
      time_sum[o.combination] += o.result.time_s;
    } else if (o.status == "done" || o.status == "diverged" || o.status == "failed") {
      ++row.failed;  // a done run whose log holds no finite value counts here too
    } else {
      ++row.pending;
    }
  }
  const double nan = std::nan("");
  for (std::size_t c = 0; c < rows.size(); ++c) {
    SweepRow& row = rows[c];
    const double n = static_cast<double>(row.metric.size());
    if (row.metric.empty()) {
      row.mean = row.std = row.min = row.max = row.time_s = nan;
      continue;
    }
    double sum = 0;
    row.min = INFINITY, row.max = -INFINITY;
    for (const auto& [seed, v] : row.metric) sum += v, row.min = std::min(row.min, v), row.max = std::max(row.max, v);
    row.mean = sum / n;
    double squares = 0;
    for (const auto& [seed, v] : row.metric) squares += (v - row.mean) * (v - row.mean);
    row.std = row.metric.size() > 1 ? std::sqrt(squares / (n - 1)) : nan;
    row.time_s = time_sum[c] / n;
  }
  return rows;
}

// ------------------------------------------------------------------------- reading a sweep folder

SweepFolder read_sweep_folder(const std::string& path) {
  const std::string manifest_path = path + "/sweep.json";
  if (!fs::is_directory(path)) throw std::runtime_error(path + ": no such folder (a sweep folder was expected)");
  if (!fs::exists(manifest_path))
    throw std::runtime_error(path + " is not a sweep folder: it has no sweep.json (rune sweep writes one)");
  SweepFolder f{path, parse_manifest(file_text(manifest_path), manifest_path), {}};
  const std::vector<GridAxis>& grid = f.manifest.grid;
  const bool sweeps_seed = std::any_of(grid.begin(), grid.end(), [](const GridAxis& a) { return a.key == "seed"; });
  try {
    // a grid over the seed keeps no seeds in the manifest: each run's seed is its value
    f.runs = expand_runs(grid, sweeps_seed ? std::vector<std::uint64_t>{0} : f.manifest.seeds);
  } catch (const std::exception& e) {
    throw std::runtime_error(manifest_path + ": " + e.what());
  }
  bool same = f.runs.size() == f.manifest.runs.size();
  for (std::size_t i = 0; same && i < f.runs.size(); ++i) same = f.runs[i].name == f.manifest.runs[i].name;
  if (!same)
    throw std::runtime_error(manifest_path + ": its runs are not those of its grid and seeds (" +
                             std::to_string(f.manifest.runs.size()) + " runs listed, " + std::to_string(f.runs.size()) +
                             " expected)");
  return f;
}

std::vector<RunOutcome> logged_outcomes(const std::string& folder, const std::vector<SweepRun>& runs,
                                        const SweepManifest& manifest) {
  std::vector<RunOutcome> outcomes;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    RunOutcome o{runs[i].combination, runs[i].seed, manifest.runs.at(i).status, {}};
    const std::string log = folder + "/" + runs[i].name + "/metrics.jsonl";
    if (o.status != "pending" && fs::exists(log)) try {
        o.result = run_result(read_metrics_log(log), manifest.metric, manifest.higher_is_better);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rune sweep: %s\n", e.what());
      }
    outcomes.push_back(o);
  }
  return outcomes;
}

SweepSummary logged_summary(const SweepFolder& f) {
  return {f.manifest.config,
          f.manifest.metric,
          f.manifest.higher_is_better,
          f.manifest.grid,
          summarise(combinations(f.manifest.grid), logged_outcomes(f.path, f.runs, f.manifest)),
          "",
          {f.path}};
}

std::string sweep_name(const std::string& folder) {
  fs::path p = fs::absolute(folder).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "runs/vit/"
  const std::string name = p.filename().string();
  return name.empty() ? folder : name;
}

SweepSummary merge_summaries(const std::vector<SweepSummary>& summaries) {
  if (summaries.empty()) throw std::invalid_argument("merge_summaries: no sweep to tabulate");
  for (const SweepSummary& s : summaries)
    if (s.sources.size() != 1)
      throw std::invalid_argument("merge_summaries: each summary must be of one sweep folder (one has " +
                                  std::to_string(s.sources.size()) + ")");
  if (summaries.size() == 1) return summaries[0];
  const SweepSummary& first = summaries[0];
  const auto keys = [](const SweepSummary& s) {
    std::vector<std::string> k;
    for (const GridAxis& a : s.grid) k.push_back(a.key);
    return k;
  };
  const auto keys_text = [&](const SweepSummary& s) {
    return s.grid.empty() ? std::string("none (a sweep over seeds alone)") : join(keys(s), ", ");
  };
  const auto judged = [](const SweepSummary& s) {
    return s.metric + " (" + (s.higher_is_better ? "higher" : "lower") + " is better)";
  };
  SweepSummary merged{"", first.metric, first.higher_is_better, {{"sweep", {}}}, {}, first.split, {}};
  std::vector<std::string> configs;
  std::map<std::string, std::string> folder_of;  // name -> folder
  for (const SweepSummary& s : summaries) {
    const std::string& folder = s.sources[0];
    if (s.metric != first.metric || s.higher_is_better != first.higher_is_better)
      throw std::invalid_argument("sweep folder " + folder + ": its runs are judged by " + judged(s) + ", those of " +
                                  first.sources[0] + " by " + judged(first) + ": one table compares one metric");
    if (keys(s) != keys(first))
      throw std::invalid_argument("sweep folder " + folder + ": its grid keys are " + keys_text(s) + ", those of " +
                                  first.sources[0] + " " + keys_text(first) +
                                  ": sweeps tabulated together need the same keys in the same order");
    if (s.split != first.split)
      throw std::invalid_argument("sweep folder " + folder + ": its values are of another split than those of " +
                                  first.sources[0]);
    const std::string name = sweep_name(folder);
    const auto [it, fresh] = folder_of.emplace(name, folder);
    if (!fresh)
      throw std::invalid_argument("sweep folders " + it->second + " and " + folder + " have the same name " + name +
                                  ": a table of several sweeps names each by its folder's name");
    merged.grid[0].values.push_back(name);
    merged.sources.push_back(folder);
    if (std::find(configs.begin(), configs.end(), s.config) == configs.end()) configs.push_back(s.config);
    for (std::size_t k = 0; k < s.grid.size(); ++k) {
      if (merged.grid.size() <= k + 1) merged.grid.push_back({s.grid[k].key, {}});
      std::vector<std::string>& values = merged.grid[k + 1].values;
      for (const std::string& v : s.grid[k].values)
        if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
    }
    for (SweepRow row : s.rows) {
      row.values.insert(row.values.begin(), name);
      merged.rows.push_back(std::move(row));
    }
  }
  merged.config = join(configs, ", ");
  return merged;
}

double read_eval_value(const std::string& path, const std::string& metric) {
  const nlohmann::json j = nlohmann::json::parse(file_text(path), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error(path + ": not a JSON object (rune eval's metrics)");
  const auto v = j.find(metric);
  if (v == j.end()) throw std::runtime_error(path + ": no " + metric + " in it (the sweep's metric)");
  if (v->is_null() || (v->is_number() && !std::isfinite(v->get<double>())))  // metrics_json writes NaN as null
    throw std::runtime_error(path + ": its " + metric + " is not finite");
  if (!v->is_number()) throw std::runtime_error(path + ": its " + metric + " is not a number");
  return v->get<double>();
}

// ------------------------------------------------------------------------- running

namespace {

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop(int) { g_stop = 1; }

// Holds an exclusive lock on <folder>/.lock while it lives: two sweeps in one folder would start
// the same runs. The runs inherit the descriptor (no O_CLOEXEC), so that the lock lasts while any
// of them does, even past a sweep killed with kill -9.
class FolderLock {
 public:
  explicit FolderLock(const std::string& folder) {
    const std::string path = folder + "/.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd_ < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw std::runtime_error("another rune sweep is running in " + folder + " (it holds " + path + ")");
    }
  }
  ~FolderLock() { ::close(fd_); }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

// The run's status from its child's wait status.
RunState ended(const std::string& name, int wait_status, bool stopping) {
  const int code = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  RunState s{name, "failed", code};
  if (code == kExitOk) s.status = "done";
  if (code == kExitNonFinite) s.status = "diverged";
  // a child Ctrl-C reached before it could catch it dies of the signal: interrupted all the same
  if (code == kExitInterrupted || (stopping && WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGINT))
    s.status = "interrupted";
  if (s.status != "failed") s.exit_code = 0;
  return s;
}

// Gives each of `jobs` children cores / jobs OpenMP threads, unless the user chose a count.
void share_cores(int jobs) {
  if (std::getenv("OMP_NUM_THREADS")) return;
  // the cores this process may run on (taskset, a container's cpuset), else the machine's
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const unsigned cores = ::sched_getaffinity(0, sizeof allowed, &allowed) == 0
                             ? static_cast<unsigned>(std::max(1, CPU_COUNT(&allowed)))
                             : std::max(1u, std::thread::hardware_concurrency());
  const unsigned each = std::max(1u, cores / static_cast<unsigned>(jobs));
  ::setenv("OMP_NUM_THREADS", std::to_string(each).c_str(), 1);
}

// Starts the program args[0] with `args` as a child process, its output appended to `log` unless
// that is "" (then it shares ours). A sweep that dies (kill -9) interrupts its children as Ctrl-C
// would: a run saves last.h5.
pid_t start_child(std::vector<std::string> args, const std::string& log) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("cannot start ") + args[1] + ": fork: " + std::strerror(errno));
  if (pid == 0) {
    if (::prctl(PR_SET_PDEATHSIG, SIGINT) != 0 || ::getppid() != parent) ::_exit(kExitInterrupted);
    if (!log.empty()) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0) ::_exit(127);
      ::close(fd);
    }
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "rune sweep: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

// Runs `count` children, `jobs` at a time, until every one has ended or Ctrl-C. start(i) starts
// the i-th and returns its pid, or -1 when there was nothing to start; ended(i, wait status,
// seconds) is called as each ends. Ctrl-C (SIGINT or SIGTERM) starts no further child and passes
// SIGINT to the running ones, saying so through stopping(how many run) once; their ends are
// waited for. Returns true when Ctrl-C came. On an exception the running children are
// interrupted and waited for, and it is rethrown.
bool run_children(std::size_t count, int jobs, const std::function<pid_t(std::size_t)>& start,
                  const std::function<void(std::size_t, int, double)>& ended,
                  const std::function<void(std::size_t)>& stopping) {
  struct Child {
    std::size_t index;
    std::chrono::steady_clock::time_point start;
  };
  std::map<pid_t, Child> running;
  g_stop = 0;
  struct sigaction stop = {}, old_int = {}, old_term = {};
  stop.sa_handler = on_stop;
  sigemptyset(&stop.sa_mask);
  ::sigaction(SIGINT, &stop, &old_int);
  ::sigaction(SIGTERM, &stop, &old_term);
  bool told = false;
  std::size_t next = 0;
  try {
    while (true) {
      while (!g_stop && running.size() < static_cast<std::size_t>(jobs) && next < count) {
        const std::size_t i = next++;
        const pid_t pid = start(i);
        if (pid > 0) running[pid] = {i, std::chrono::steady_clock::now()};
      }
      if (running.empty()) break;
      if (g_stop && !told) {
        for (const auto& [pid, child] : running) ::kill(pid, SIGINT);
        stopping(running.size());
        told = true;
      }
      int wait_status = 0;
      const pid_t pid = ::waitpid(-1, &wait_status, WNOHANG);
      if (pid > 0 && running.count(pid)) {
        const Child child = running.at(pid);
        running.erase(pid);
        ended(child.index, wait_status,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - child.start).count());
      } else if (pid < 0 && errno != EINTR) {
        throw std::runtime_error(std::string("waiting for the child processes: ") + std::strerror(errno));
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polled, so that Ctrl-C is seen at once
      }
    }
  } catch (...) {
    // stop what runs rather than leave it behind
    for (const auto& [pid, child] : running) ::kill(pid, SIGINT);
    for (const auto& [pid, child] : running) ::waitpid(pid, nullptr, 0);
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
    throw;
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return g_stop != 0;
}

}  // namespace

int run_sweep(const SweepRequest& request) {
  if (request.jobs < 1) throw std::invalid_argument("--jobs " + std::to_string(request.jobs) + ": must be at least 1");
  std::vector<GridAxis> grid;
  for (const std::string& g : request.grid) grid.push_back(parse_grid(g));
  check_grid(grid);
  for (const std::string& s : request.sets) {
    const std::string key = trim(s.substr(0, s.find('=')));
    if (std::find(kSweepKeys.begin(), kSweepKeys.end(), key) != kSweepKeys.end())
      throw std::invalid_argument("--set " + s + ": the sweep names each run's folder itself (--out names the " +
                                  "sweep's folder)");
    for (const GridAxis& a : grid)
      if (a.key == key)
        throw std::invalid_argument("--set " + s + " and --grid " + a.key + ": give the key one of them");
  }

  // every combination's config is read and checked before anything runs
  const std::string config_text = file_text(request.config);
  Config base = Config::load(request.config);
  for (const std::string& s : request.sets) base.set(s);
  const RunDescription described = describe_run(base, request.config);
  base.check_all_used();
  const std::uint64_t base_seed = read_seed(base);
  const std::string run_dir = base.string("run.dir", "runs", "the folder that holds the run folders");
  const bool sweeps_seed = std::any_of(grid.begin(), grid.end(), [](const GridAxis& a) { return a.key == "seed"; });
  if (sweeps_seed && request.seeds != 1)
    throw std::invalid_argument("--grid seed=... and --seeds " + std::to_string(request.seeds) +
                                ": the grid gives the seeds; leave out --seeds");
  const std::vector<std::uint64_t> seeds = sweep_seeds(base_seed, request.seeds);
  const std::vector<SweepRun> runs = expand_runs(grid, seeds);
  const std::vector<std::vector<std::string>> combos = combinations(grid);
  for (const auto& combo : combos) {
    const std::string what = combination_text(grid, combo);
    try {
      Config c = Config::load(request.config);
      for (const std::string& s : request.sets) c.set(s);
      for (std::size_t i = 0; i < grid.size(); ++i) c.set(grid[i].key + "=" + combo[i]);
      const RunDescription d = describe_run(c, request.config);
      c.check_all_used();
      if (d.primary_metric != described.primary_metric)
        throw std::invalid_argument("its runs are judged by " + d.primary_metric + ", the others' by " +
                                    described.primary_metric + ": a sweep compares one metric");
    } catch (const std::exception& e) {
      throw std::invalid_argument("sweep combination " + what + ": " + e.what());
    }
  }

  // the sweep folder: a new one, or this very sweep's to go on with
  const std::string out = request.out.empty()
                              ? (fs::path(run_dir) / ("sweep-" + fs::path(request.config).stem().string())).string()
                              : request.out;
  const std::string manifest_path = out + "/sweep.json";
  SweepManifest manifest{request.config,
                         sha256_hex(config_text.data(), config_text.size()),
                         request.sets,
                         grid,
                         seeds,
                         described.primary_metric,
                         described.higher_is_better,
                         {}};
  if (sweeps_seed) manifest.seeds.clear();
  for (const SweepRun& r : runs) manifest.runs.push_back({r.name});
  const bool existed = fs::exists(out);
  if (existed && !fs::is_directory(out)) throw std::invalid_argument(out + " exists and is not a folder");
  if (existed && !fs::exists(manifest_path) && !fs::is_empty(out))
    throw std::invalid_argument(out + " exists and is not a sweep folder (no sweep.json): name another with --out");
  fs::create_directories(out);
  const FolderLock lock(out);
  if (fs::exists(manifest_path)) {
    const SweepManifest existing = parse_manifest(file_text(manifest_path), manifest_path);
    const std::string difference = manifest_difference(existing, manifest);
    if (!difference.empty())
      throw std::invalid_argument("sweep folder " + out + " holds another sweep: " + difference +
                                  ". Rerun that sweep's command to go on with it, or name a new folder with --out");
    for (RunState& r : manifest.runs)
      for (const RunState& old : existing.runs)
        if (old.name == r.name) r = old;
  }
  const auto save_manifest = [&] { write_file(manifest_path, manifest_json(manifest), "sweep manifest"); };
  save_manifest();

  const auto summary = [&] {
    return SweepSummary{request.config,
                        manifest.metric,
                        manifest.higher_is_better,
                        grid,
                        summarise(combos, logged_outcomes(out, runs, manifest)),
                        "",
                        {out}};
  };
  const auto report = [&] {
    if (request.after_run) request.after_run(out, summary());
  };

  std::vector<std::size_t> todo;
  int finished_before = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string& status = manifest.runs[i].status;
    if (status == "done" || status == "diverged" || (status == "failed" && !request.retry_failed))
      ++finished_before;
    else
      todo.push_back(i);
  }
  const std::size_t per_combination = sweeps_seed ? 1 : seeds.size();
  std::printf("sweep %s: %zu runs (%zu combination%s x %zu seed%s), %s by val_%s; %d finished before, %zu to run%s\n",
              out.c_str(), runs.size(), combos.size(), combos.size() == 1 ? "" : "s", per_combination,
              per_combination == 1 ? "" : "s", described.higher_is_better ? "highest" : "lowest",
              described.primary_metric.c_str(), finished_before, todo.size(),
              request.jobs > 1 ? (", " + std::to_string(request.jobs) + " at a time").c_str() : "");
  std::fflush(stdout);
  share_cores(request.jobs);

  const std::string total = std::to_string(runs.size());
  const auto tag = [&](std::size_t i) { return "[" + std::to_string(i + 1) + "/" + total + "] " + runs[i].name; };

  // Starts run i (or finds it finished); -1 when nothing was started.
  const auto start = [&](std::size_t i) -> pid_t {
    const SweepRun& r = runs[i];
    const std::string folder = out + "/" + r.name, last = folder + "/checkpoints/last.h5";
    std::vector<std::string> args{request.binary, "train"};
    std::unique_ptr<Checkpoint> c;
    if (fs::exists(last)) try {
        c = std::make_unique<Checkpoint>(read_checkpoint(last));
      } catch (const std::exception& e) {
        std::printf("%s: %s; starting it again\n", tag(i).c_str(), e.what());
      }
    if (c) {
      // a run interrupted at its last step is finished: its last.h5 is at train.epochs
      Config config = Config::parse(c->config, last + " (its config)");
      if (c->epoch >= config.integer("train.epochs", 10, {1}, "")) {
        manifest.runs[i] = {r.name, "done", 0};
        std::printf("%s: finished already (%s at step %lld)\n", tag(i).c_str(), last.c_str(),
                    static_cast<long long>(c->step));
        save_manifest();
        report();
        return -1;
      }
      args.insert(args.end(), {"--resume", last});
      std::printf("%s: resuming from step %lld\n", tag(i).c_str(), static_cast<long long>(c->step));
    } else {
      // started but without a checkpoint yet: nothing worth keeping, and the folder's name must be free
      if (fs::exists(folder)) fs::remove_all(folder);
      args.push_back(request.config);
      for (const std::string& s : request.sets) args.insert(args.end(), {"--set", s});
      for (std::size_t k = 0; k < grid.size(); ++k) args.insert(args.end(), {"--set", grid[k].key + "=" + r.values[k]});
      if (!sweeps_seed) args.insert(args.end(), {"--set", "seed=" + std::to_string(r.seed)});
      args.insert(args.end(), {"--set", "run.dir=" + out, "--set", "run.name=" + r.name});
      std::printf("%s: starting\n", tag(i).c_str());
    }
    // one run at a time shows its live progress; several write to a log each
    const std::string log = out + "/" + r.name + ".log";
    if (request.jobs > 1 || !::isatty(STDOUT_FILENO)) args.push_back("--no-progress");
    if (request.jobs > 1) std::printf("%s: output in %s\n", tag(i).c_str(), log.c_str());
    manifest.runs[i] = {r.name, "running", 0};
    save_manifest();
    return start_child(args, request.jobs > 1 ? log : "");
  };

  const auto finish = [&](std::size_t i, int wait_status, double wall) {
    manifest.runs[i] = ended(runs[i].name, wait_status, g_stop != 0);
    save_manifest();
    const RunState& s = manifest.runs[i];
    std::string said = s.status;
    if (s.status == "failed") said += " (exit code " + std::to_string(s.exit_code) + ")";
    const std::string log = out + "/" + runs[i].name + "/metrics.jsonl";
    if (fs::exists(log)) try {
        const RunResult r = run_result(read_metrics_log(log), manifest.metric, manifest.higher_is_better);
        if (r.has_metric)
          said +=
              ", best val_" + manifest.metric + " " + fixed(r.best, 4) + " (step " + std::to_string(r.best_step) + ")";
      } catch (const std::exception&) {
      }
    std::printf("%s: %s in %s\n", tag(i).c_str(), said.c_str(), duration(wall).c_str());
    std::fflush(stdout);
    report();
  };

  // Ctrl-C and SIGTERM: no new run starts, the running ones are told to stop (each saves last.h5)
  const bool stopped = run_children(
      todo.size(), request.jobs, [&](std::size_t k) { return start(todo[k]); },
      [&](std::size_t k, int wait_status, double wall) { finish(todo[k], wait_status, wall); },
      [](std::size_t n) {
        std::printf("rune sweep: interrupted; stopping %zu run%s (each saves its last.h5)\n", n, n == 1 ? "" : "s");
        std::fflush(stdout);
      });
  save_manifest();
  report();

  std::map<std::string, int> counts;
  for (const RunState& r : manifest.runs) ++counts[r.status];
  std::vector<std::string> parts;
  for (const char* s : {"done", "diverged", "failed", "interrupted", "pending"})
    if (counts[s]) parts.push_back(std::to_string(counts[s]) + " " + s);
  std::printf("sweep %s: %s\n", out.c_str(), join(parts, ", ").c_str());
  if (stopped || counts["interrupted"] || counts["pending"] || counts["running"]) {
    std::printf("continue with the same command: the finished runs are kept, the others resume\n");
    return kExitInterrupted;
  }
  return kExitOk;
}

// ------------------------------------------------------------------------- summarizing

namespace {

// The last non-empty line of a file (a failed child's error), "" when there is none.
std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (!trim(line).empty()) last = trim(line);
  return last;
}

}  // namespace

int summarize_sweeps(const SummarizeRequest& request) {
  if (request.folders.empty()) throw std::invalid_argument("--summarize: name at least one sweep folder");
  if (request.jobs < 1) throw std::invalid_argument("--jobs " + std::to_string(request.jobs) + ": must be at least 1");
  if (request.folders.size() > 1 && request.out.empty())
    throw std::invalid_argument("--summarize with " + std::to_string(request.folders.size()) +
                                " sweep folders needs --out: the folder for their table, which is no one sweep's");
  const std::string& split = request.split;
  if (split.find('/') != std::string::npos || split == "." || split == "..")
    throw std::invalid_argument("--split " + split + ": not a split's name");
  std::vector<SweepFolder> folders;
  for (const std::string& f : request.folders) folders.push_back(read_sweep_folder(f));
  std::vector<std::vector<RunOutcome>> outcomes;
  for (const SweepFolder& f : folders) outcomes.push_back(logged_outcomes(f.path, f.runs, f.manifest));
  const auto summary = [&] {
    std::vector<SweepSummary> parts;
    for (std::size_t k = 0; k < folders.size(); ++k) {
      const SweepManifest& m = folders[k].manifest;
      parts.push_back({m.config,
                       m.metric,
                       m.higher_is_better,
                       m.grid,
                       summarise(combinations(m.grid), outcomes[k]),
                       split,
                       {folders[k].path}});
    }
    return merge_summaries(parts);
  };
  summary();  // the tables merge, before anything is evaluated

  // the table's folder: a sweep folder's (the one summarized, say) only while no sweep runs in it
  const std::string out = request.out.empty() ? request.folders[0] : request.out;
  if (fs::exists(out) && !fs::is_directory(out)) throw std::invalid_argument(out + " exists and is not a folder");
  std::optional<FolderLock> lock;
  if (fs::exists(out + "/sweep.json")) lock.emplace(out);

  if (!split.empty()) {
    const std::string metric = folders[0].manifest.metric;
    struct Evaluation {
      std::size_t folder, run;
      std::string name;  // <folder>/<run>
    };
    std::vector<Evaluation> done, todo;
    std::map<std::pair<std::size_t, std::size_t>, std::string> failed;  // (folder, run) -> why
    for (std::size_t k = 0; k < folders.size(); ++k)
      for (std::size_t i = 0; i < folders[k].runs.size(); ++i)
        if (outcomes[k][i].status == "done") done.push_back({k, i, folders[k].path + "/" + folders[k].runs[i].name});
    const auto checkpoint = [](const Evaluation& e) { return e.name + "/checkpoints/best.h5"; };
    const auto report = [&](const Evaluation& e) { return e.name + "/eval-" + split + ".json"; };
    const auto log = [&](const Evaluation& e) { return e.name + ".eval-" + split + ".log"; };
    std::size_t up_to_date = 0;
    for (const Evaluation& e : done) {
      if (!fs::exists(checkpoint(e))) {
        failed[{e.folder, e.run}] = "it has no checkpoints/best.h5";
      } else if (fs::exists(report(e)) && fs::last_write_time(report(e)) >= fs::last_write_time(checkpoint(e))) {
        ++up_to_date;
      } else {
        todo.push_back(e);
      }
    }
    std::printf("%zu done run%s in %zu sweep folder%s, %s by %s %s: %zu evaluated before, %zu to evaluate%s%s\n",
                done.size(), done.size() == 1 ? "" : "s", folders.size(), folders.size() == 1 ? "" : "s",
                folders[0].manifest.higher_is_better ? "highest" : "lowest", split.c_str(), metric.c_str(), up_to_date,
                todo.size(),
                todo.size() > 1 && request.jobs > 1 ? (", " + std::to_string(request.jobs) + " at a time").c_str() : "",
                failed.empty() ? "" : (", " + std::to_string(failed.size()) + " without a best.h5").c_str());
    for (const auto& [at, why] : failed)
      std::printf("%s/%s: %s: counted as failed\n", folders[at.first].path.c_str(),
                  folders[at.first].runs[at.second].name.c_str(), why.c_str());
    std::fflush(stdout);
    share_cores(request.jobs);
    const std::string total = std::to_string(todo.size());
    const auto tag = [&](std::size_t n) { return "[" + std::to_string(n + 1) + "/" + total + "] " + todo[n].name; };
    const bool stopped = run_children(
        todo.size(), request.jobs,
        [&](std::size_t n) {
          const Evaluation& e = todo[n];
          std::printf("%s: evaluating best.h5 on %s (output in %s)\n", tag(n).c_str(), split.c_str(), log(e).c_str());
          return start_child({request.binary, "eval", checkpoint(e), "--split", split, "--out", e.name}, log(e));
        },
        [&](std::size_t n, int wait_status, double wall) {
          const Evaluation& e = todo[n];
          std::string why;
          if (g_stop && (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0)) {
            std::printf("%s: interrupted\n", tag(n).c_str());  // evaluated again by the next command
            std::fflush(stdout);
            return;
          }
          if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
            const int code = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
            const std::string said = last_line(log(e));
            why = "evaluation failed (exit code " + std::to_string(code) + (said.empty() ? "" : ": " + said) + ")";
          } else {
            try {
              const double v = read_eval_value(report(e), metric);
              std::printf("%s: %s %s %s in %s\n", tag(n).c_str(), split.c_str(), metric.c_str(), fixed(v, 4).c_str(),
                          duration(wall).c_str());
            } catch (const std::exception& ex) {
              why = ex.what();
            }
          }
          if (!why.empty()) {
            failed[{e.folder, e.run}] = why;
            std::printf("%s: %s: counted as failed\n", tag(n).c_str(), why.c_str());
          }
          std::fflush(stdout);
        },
        [](std::size_t n) {
          std::printf("rune sweep: interrupted; stopping %zu evaluation%s\n", n, n == 1 ? "" : "s");
          std::fflush(stdout);
        });
    if (stopped) {
      std::printf("no table written; the same command goes on (the evaluations that ended are kept)\n");
      return kExitInterrupted;
    }
    // each done run's value: its evaluation on the split, or failed
    for (const Evaluation& e : done) {
      RunOutcome& o = outcomes[e.folder][e.run];
      if (!failed.count({e.folder, e.run})) try {
          o.result.best = read_eval_value(report(e), metric);
          o.result.has_metric = true;
          continue;
        } catch (const std::exception& ex) {
          failed[{e.folder, e.run}] = ex.what();
          std::printf("%s: %s: counted as failed\n", e.name.c_str(), ex.what());
        }
      o.status = "failed";
      o.result.has_metric = false;
    }
    std::vector<std::string> names;
    for (const auto& [at, why] : failed)
      names.push_back(folders[at.first].path + "/" + folders[at.first].runs[at.second].name);
    if (todo.empty())
      std::printf("nothing evaluated: every done run's eval-%s.json is up to date with its best.h5\n", split.c_str());
    else
      std::printf("evaluated %zu run%s on %s\n", todo.size(), todo.size() == 1 ? "" : "s", split.c_str());
    if (!names.empty())
      std::printf("%zu run%s counted as failed: %s\n", names.size(), names.size() == 1 ? "" : "s",
                  join(names, ", ").c_str());
    std::fflush(stdout);
  }

  fs::create_directories(out);
  if (request.write) request.write(out, summary());
  return kExitOk;
}

}  // namespace rune::train
