// Every file Runestone writes: the atomic writer (train/files.hpp), durations and numbers as text
// (train/format.hpp), the CSV writer (report/csv.hpp), and the faults they must survive. A full
// disk is a forked child whose file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) the write runs
// into; an unwritable folder is one the child, dropped to an unprivileged user if it is root, may
// not create files in. After each: the call failed with a message naming the file, the previous
// content of the target is intact, and no temporary is left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "autograd/ops.hpp"
#include "report/csv.hpp"
#include "report/plot.hpp"
#include "tests/helpers.hpp"
#include "train/checkpoint.hpp"
#include "train/files.hpp"
#include "train/format.hpp"
#include "train/metrics_log.hpp"

namespace rune::train {
namespace {

namespace fs = std::filesystem;

// How the forked child is held back.
struct Fault {
  rlim_t max_file_bytes = RLIM_INFINITY;  // a full disk: writes past this many bytes fail (EFBIG)
  bool unprivileged = false;              // as root, become nobody first (so permissions apply)
};

// Runs `f` in a forked child under `fault` and returns what it returned, or the message of what it
// threw ("threw: ..."). The child runs no OpenMP code (its thread pool does not survive fork):
// everything it writes is built before the fork.
std::string in_child(const Fault& fault, const std::function<std::string()>& f) {
  int out[2];
  if (::pipe(out) != 0) return "pipe failed";
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return "fork failed";
  if (child == 0) {
    ::close(out[0]);
    std::string result;
    try {
      ::signal(SIGXFSZ, SIG_IGN);  // past the limit, write() fails with EFBIG instead of killing us
      const rlimit limit{fault.max_file_bytes, fault.max_file_bytes};
      if (fault.max_file_bytes != RLIM_INFINITY && ::setrlimit(RLIMIT_FSIZE, &limit) != 0)
        throw std::runtime_error("setrlimit failed");
      if (fault.unprivileged && ::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0))
        throw std::runtime_error("cannot drop root to nobody");
      result = f();
    } catch (const std::exception& e) {
      result = std::string("threw: ") + e.what();
    }
    for (std::size_t done = 0; done < result.size();) {
      const ssize_t n = ::write(out[1], result.data() + done, result.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::_exit(0);  // no atexit handlers, no gtest teardown in the child
  }
  ::close(out[1]);
  std::string result;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) result.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child died: status " << status;
  return result;
}

// What `f` throws, as in_child reports it.
std::function<std::string()> thrown(const std::function<void()>& f) {
  return [f] {
    f();
    return std::string("no exception");
  };
}

// The failure of a write into a fault: it threw, naming the file and the system's reason.
void expect_failure_naming(const std::string& result, const std::string& path, const std::string& cause) {
  EXPECT_EQ(result.rfind("threw: ", 0), 0u) << result;
  EXPECT_NE(result.find(path), std::string::npos) << "the message names " << path << ": " << result;
  EXPECT_NE(result.find(cause), std::string::npos) << "the message says why (" << cause << "): " << result;
  std::printf("as it should, %s\n", result.c_str());
}

TEST(Output, WriteFileReplacesTheFileWholeAndLeavesNoTemporary) {
  const fs::path dir = scratch_dir("output");
  const std::string path = (dir / "a.txt").string();
  write_file(path, "first\n");
  write_file(path, "second\n");
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_EQ(s.str(), "second\n");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_NE(error_of([&] { write_file((dir / "missing" / "b.txt").string(), "x"); }).find("missing/b.txt.tmp"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(Output, DurationsReadAsMinutesOrHours) {
  EXPECT_EQ(duration(0), "0:00");
  EXPECT_EQ(duration(-5), "0:00");
  EXPECT_EQ(duration(59.6), "1:00");
  EXPECT_EQ(duration(125), "2:05");
  EXPECT_EQ(duration(3600 + 61), "1:01:01");
}

TEST(Files, NumbersAsTextFixedOrNineSignificantDigits) {
  EXPECT_EQ(fixed(0.5, 3), "0.500");
  EXPECT_EQ(fixed(-2.0 / 3.0, 6), "-0.666667");
  EXPECT_EQ(significant(3.0), "3");
  EXPECT_EQ(significant(static_cast<float>(0.1)), "0.100000001");  // a float32 reads back exactly
  EXPECT_EQ(static_cast<float>(std::stod(significant(static_cast<float>(0.1)))), static_cast<float>(0.1));
  EXPECT_EQ(significant(1.5e-12), "1.5e-12");
  EXPECT_EQ(significant(0.123456, 3), "0.123");
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const std::string& s : {fixed(nan, 2), fixed(-nan, 2), significant(nan), significant(-nan)}) EXPECT_EQ(s, "nan");
  EXPECT_EQ(significant(inf), "inf");
  EXPECT_EQ(fixed(-inf, 4), "-inf");
  EXPECT_EQ(fixed(1e300, 1).size(), 301u + 2u);  // no truncation of a long number
}

TEST(Files, CsvQuotesOnlyWhatMustBeQuotedAndFormatsNumbersOneWay) {
  using report::Csv;
  using report::CsvField;
  Csv csv({"name", "count", "value", "score"});
  csv.row({"plain", 3, 0.25, CsvField::fixed(0.5, 3)});
  csv.row({"a, b", std::int64_t{-7}, static_cast<float>(0.1), CsvField::empty()});
  csv.row({"say \"hi\"", std::size_t{0}, std::numeric_limits<double>::quiet_NaN(), CsvField::fixed(2, 0)});
  csv.row({"two\nlines", 1, -std::numeric_limits<double>::infinity(), CsvField::quoted("always")});
  csv.row({"cr\r", 1, 1e-20, CsvField::quoted("in \"quotes\"")});
  EXPECT_EQ(csv.text(),
            "name,count,value,score\n"
            "plain,3,0.25,0.500\n"
            "\"a, b\",-7,0.100000001,\n"
            "\"say \"\"hi\"\"\",0,nan,2\n"
            "\"two\nlines\",1,-inf,\"always\"\n"
            "\"cr\r\",1,1e-20,\"in \"\"quotes\"\"\"\n");
  EXPECT_EQ(csv.rows(), 5u);
  EXPECT_NE(error_of([&] {
              csv.row({"short", 1});
            }).find("a row of 2 fields under a header of 4 columns"),
            std::string::npos);
  EXPECT_EQ(csv.rows(), 5u) << "the refused row is not written";

  const fs::path dir = scratch_dir("csv");
  csv.write((dir / "t.csv").string());
  EXPECT_EQ(read_file(dir / "t.csv"), csv.text());
  EXPECT_FALSE(fs::exists(dir / "t.csv.tmp"));
  fs::remove_all(dir);
}

TEST(Files, AFullDiskFailsWriteFileByNameAndKeepsThePreviousFile) {
  const fs::path dir = scratch_dir("full_text");
  const std::string path = (dir / "config.toml").string();
  write_file(path, "previous\n");
  const std::string big(64 * 1024, 'x');
  const std::string result = in_child({16 * 1024, false}, thrown([&] { write_file(path, big); }));
  expect_failure_naming(result, path, "File too large");
  EXPECT_EQ(read_file(path), "previous\n");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  // and without the limit the same write goes through
  EXPECT_EQ(in_child({}, thrown([&] { write_file(path, big); })), "no exception");
  EXPECT_EQ(read_file(path), big);
  fs::remove_all(dir);
}

// Files written together replace the previous ones all at once, or, when one fails, none of them.
TEST(Files, ATransactionReplacesAllItsFilesOrNone) {
  const fs::path dir = scratch_dir("transaction");
  const std::string small = (dir / "a.csv").string(), large = (dir / "b.png").string();
  write_file(small, "old a\n");
  write_file(large, "old b\n");
  const std::string big(64 * 1024, 'x');
  const std::string result = in_child({16 * 1024, false}, thrown([&] {
                                        FileTransaction files;
                                        write_file(small, "new a\n");  // fits: written, not yet renamed
                                        write_file(large, big);        // does not
                                        files.commit();
                                      }));
  expect_failure_naming(result, large, "File too large");
  EXPECT_EQ(read_file(small), "old a\n") << "the file written before the failure is not replaced";
  EXPECT_EQ(read_file(large), "old b\n");
  EXPECT_FALSE(fs::exists(small + ".tmp"));
  EXPECT_FALSE(fs::exists(large + ".tmp"));
  {
    FileTransaction files;
    write_file(small, "new a\n");
    write_file(large, "new b\n");
    EXPECT_EQ(read_file(small), "old a\n") << "nothing is renamed before commit()";
    files.commit();
  }
  EXPECT_EQ(read_file(small), "new a\n");
  EXPECT_EQ(read_file(large), "new b\n");
  write_file(small, "outside\n");  // no transaction open: renamed at once
  EXPECT_EQ(read_file(small), "outside\n");
  fs::remove_all(dir);
}

TEST(Files, AFullDiskFailsAPlotByNameAndKeepsThePreviousPng) {
  const fs::path dir = scratch_dir("full_png");
  const std::string path = (dir / "curves.png").string();
  report::Series loss{"loss", {}}, val{"val_loss", {}};
  for (int i = 0; i < 400; ++i) loss.points.emplace_back(i, 3.0 / (1 + 0.05 * i) + 0.2 * std::sin(i * 1.7));
  for (int i = 0; i < 400; i += 50) val.points.emplace_back(i, 3.0 / (1 + 0.05 * i));
  report::plot_curves(path, "before", loss, val, {});  // in the parent: cairo and its fonts are set up before the fork
  const std::string before = read_file(path);
  ASSERT_EQ(before.substr(1, 3), "PNG");
  ASSERT_GT(before.size(), 4096u);
  const std::string result = in_child(
      {4096, false}, thrown([&] { report::plot_curves(path, "after, with a longer title", loss, val, {val}); }));
  expect_failure_naming(result, path, "File too large");
  EXPECT_EQ(read_file(path), before) << "the previous plot is intact";
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::remove_all(dir);
}

TEST(Files, AFullDiskFailsACheckpointByNameAndKeepsThePreviousOne) {
  const fs::path dir = scratch_dir("full_checkpoint");
  const std::string path = (dir / "last.h5").string();
  Checkpoint small;
  small.params = {{"w", full({8}, 1.0)}};
  small.step = 1;
  save_checkpoint(path, small);
  const std::string before = read_file(path);
  Checkpoint big;  // built before the fork: the child only writes
  big.params = {{"w", full({8}, 2.0)}, {"big", zeros({256 * 1024})}};
  big.step = 2;
  big.config = "seed = 1\n";
  // limits at which the write fails at different places: the first dataset, the big one, the end
  for (const rlim_t limit : {rlim_t{before.size() / 2}, rlim_t{before.size() + 4096}, rlim_t{900 * 1024}}) {
    const std::string result = in_child({limit, false}, thrown([&] { save_checkpoint(path, big); }));
    expect_failure_naming(result, path, "File too large");
    EXPECT_EQ(read_file(path), before) << "limit " << limit;
    EXPECT_FALSE(fs::exists(path + ".tmp")) << "limit " << limit;
    EXPECT_EQ(read_checkpoint(path).step, 1);
  }
  EXPECT_EQ(in_child({}, thrown([&] { save_checkpoint(path, big); })), "no exception");
  EXPECT_EQ(read_checkpoint(path).step, 2);
  fs::remove_all(dir);
}

TEST(Files, AFullDiskFailsAMetricsAppendByNameAndLeavesWholeLines) {
  const fs::path dir = scratch_dir("full_metrics");
  const std::string path = (dir / "metrics.jsonl").string();
  const std::string result = in_child({2000, false}, [&] {
    MetricsLog log(path, 0);
    for (int step = 1;; ++step) {
      try {
        log.append({{"step", static_cast<double>(step)}, {"loss", 1.0 / step}, {"lr", 1e-3}, {"grad_norm", 0.5}});
      } catch (const std::exception& e) {
        return "step " + std::to_string(step) + " threw: " + e.what();
      }
      if (step > 1000) return std::string("no failure");
    }
  });
  EXPECT_NE(result.find("threw: metrics log " + path), std::string::npos) << result;
  EXPECT_NE(result.find("File too large"), std::string::npos) << result;
  const std::string text = read_file(path);
  EXPECT_LE(text.size(), 2000u);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n') << "no half record at the end";
  const std::vector<MetricsRecord> records = read_metrics_log(path);
  const int failed_at = std::stoi(result.substr(5));
  EXPECT_EQ(static_cast<int>(records.size()), failed_at - 1) << "every record before the failure is there";
  // a run resumed from a checkpoint keeps the records up to its step and appends after them
  {
    MetricsLog log(path, 3);
    log.append({{"step", 4}, {"loss", 0.125}});
  }
  const std::vector<MetricsRecord> resumed = read_metrics_log(path);
  ASSERT_EQ(resumed.size(), 4u);
  EXPECT_EQ(resumed.back().at("loss"), 0.125);
  fs::remove_all(dir);
}

TEST(Files, AnUnwritableFolderFailsEveryWriterNamingThePath) {
  const fs::path dir = scratch_dir("unwritable");
  const fs::path locked = dir / "locked";
  fs::create_directories(locked);
  const std::string text = (locked / "heads.md").string(), png = (locked / "curves.png").string(),
                    h5 = (locked / "last.h5").string(), csv = (locked / "heads.csv").string(),
                    log = (locked / "metrics.jsonl").string();
  write_file(text, "previous\n");
  ::chmod(locked.c_str(), 0555);
  Checkpoint c;
  c.params = {{"w", full({8}, 1.0)}};
  report::Series loss{"loss", {{0, 1.0}, {1, 0.5}}};
  report::plot_curves((dir / "warm.png").string(), "fonts", loss, {}, {});  // cairo set up before the fork
  report::Csv table({"a", "b"});
  table.row({1, 2});
  const Fault fault{RLIM_INFINITY, true};
  expect_failure_naming(in_child(fault, thrown([&] { write_file(text, "new\n"); })), text, "Permission denied");
  expect_failure_naming(in_child(fault, thrown([&] { report::plot_curves(png, "t", loss, {}, {}); })), png,
                        "Permission denied");
  expect_failure_naming(in_child(fault, thrown([&] { save_checkpoint(h5, c); })), h5, "Permission denied");
  expect_failure_naming(in_child(fault, thrown([&] { table.write(csv); })), csv, "Permission denied");
  expect_failure_naming(in_child(fault, thrown([&] { MetricsLog m(log, 0); })), log, "Permission denied");
  ::chmod(locked.c_str(), 0755);
  EXPECT_EQ(read_file(text), "previous\n");
  for (const auto& entry : fs::directory_iterator(locked)) EXPECT_EQ(entry.path().filename(), "heads.md");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune::train
