// What the fault tests share: the rune binary run in a child process (fork + exec) with its
// output in a pipe, a file size limit (a full disk) and a time limit; a folder's files as bytes,
// to compare before and after; the *.tmp files left in a folder; the tiny runs the tests damage;
// the command that resumes a run; and each test's wall time, printed.
//
// Children run with OMP_NUM_THREADS=1: several run at once on few cores, and a test's own
// process forks after using no OpenMP (a forked child has no thread pool).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/helpers.hpp"

extern char** environ;

namespace rune::faults {

namespace fs = std::filesystem;

// ----------------------------------------------------------------------------- processes

// A started child: its id and the read end of the pipe that holds its stdout and stderr.
struct Process {
  pid_t pid = -1;
  int output = -1;
};

// How a child ended.
struct Exit {
  int code = -1;           // its exit status, or -1 when a signal ended it
  int signal = 0;          // the signal that ended it (0: none)
  bool timed_out = false;  // killed by finish() for running past its time
  std::string output;      // stdout and stderr, interleaved

  // "exit 1", "signal 11 (Segmentation fault)", "killed after the time limit"
  std::string describe() const {
    if (timed_out) return "killed after the time limit";
    if (signal) return "signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
    return "exit " + std::to_string(code);
  }
};

// The environment of every child: this process's, with OMP_NUM_THREADS=1.
inline std::vector<std::string> child_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "OMP_NUM_THREADS=", 16) != 0) env.emplace_back(*e);
  env.emplace_back("OMP_NUM_THREADS=1");
  return env;
}

// Starts `rune args...` in `dir`: stdin from /dev/null, stdout and stderr into one pipe. With
// max_file_bytes set, no file it writes may grow past that many bytes (RLIMIT_FSIZE) and SIGXFSZ
// is ignored, so such a write fails with EFBIG as on a full disk. Everything exec needs is built
// before the fork.
inline Process start_rune(const std::vector<std::string>& args, const std::string& dir,
                          rlim_t max_file_bytes = RLIM_INFINITY) {
  std::vector<std::string> argv_s{RUNE_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = child_environment();
  std::vector<char*> env;
  for (std::string& e : env_s) env.push_back(e.data());
  env.push_back(nullptr);
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(out[0]);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(out[1], 1) < 0 || ::dup2(out[1], 2) < 0) ::_exit(126);
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    if (max_file_bytes != RLIM_INFINITY) {
      ::signal(SIGXFSZ, SIG_IGN);  // past the limit write() fails with EFBIG instead of killing the process
      const rlimit limit{max_file_bytes, max_file_bytes};
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(126);
    }
    ::execve(argv[0], argv.data(), env.data());
    ::_exit(127);
  }
  ::close(out[1]);
  return {pid, out[0]};
}

// Reads the output of every process to its end and reaps each. One still running `timeout_s`
// seconds after the call is killed (SIGKILL) and marked timed out.
inline std::vector<Exit> finish(const std::vector<Process>& processes, double timeout_s = 120) {
  std::vector<Exit> exits(processes.size());
  std::vector<bool> open(processes.size(), true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < processes.size(); ++i)
      if (open[i]) fds.push_back({processes[i].output, POLLIN, 0}), which.push_back(i);
    if (fds.empty()) break;
    const auto left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      for (std::size_t i : which) {
        ::kill(processes[i].pid, SIGKILL);
        ::close(processes[i].output);
        exits[i].timed_out = true;
        open[i] = false;
      }
      break;
    }
    if (::poll(fds.data(), fds.size(), static_cast<int>(left * 1000) + 1) < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("poll failed: ") + std::strerror(errno));
    }
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[k].fd, buf, sizeof buf);
      if (n > 0) {
        exits[which[k]].output.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[k].fd);
        open[which[k]] = false;
      }
    }
  }
  for (std::size_t i = 0; i < processes.size(); ++i) {
    int status = 0;
    ::waitpid(processes[i].pid, &status, 0);
    if (WIFEXITED(status)) exits[i].code = WEXITSTATUS(status);
    if (WIFSIGNALED(status) && !exits[i].timed_out) exits[i].signal = WTERMSIG(status);
  }
  return exits;
}

// Runs `rune args...` in `dir` to its end (see start_rune and finish).
inline Exit run_rune(const std::vector<std::string>& args, const std::string& dir,
                     rlim_t max_file_bytes = RLIM_INFINITY, double timeout_s = 120) {
  return finish({start_rune(args, dir, max_file_bytes)}, timeout_s)[0];
}

// The command that continues a run from one of its checkpoints (<run>/checkpoints/x.h5), with the
// config the run started with.
inline std::vector<std::string> resume_command(const std::string& checkpoint) {
  return {"train", "--no-progress", "--resume", checkpoint};
}

// ----------------------------------------------------------------------------- files

// Every file below `dir`, by path relative to it, with its bytes.
using Snapshot = std::map<std::string, std::string>;

inline Snapshot snapshot(const fs::path& dir) {
  Snapshot s;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) s[fs::relative(entry.path(), dir).string()] = read_file(entry.path());
  return s;
}

// The files of `before` that are gone or changed in `after`, each with what happened. A file
// named in `may_grow` (a log) may have had whole lines appended, and nothing else.
inline std::vector<std::string> changed_files(const Snapshot& before, const Snapshot& after,
                                              const std::set<std::string>& may_grow = {}) {
  std::vector<std::string> changed;
  for (const auto& [name, bytes] : before) {
    const auto now = after.find(name);
    if (now == after.end()) {
      changed.push_back(name + " is gone");
    } else if (now->second != bytes) {
      const bool grown =
          may_grow.count(name) && now->second.compare(0, bytes.size(), bytes) == 0 && now->second.back() == '\n';
      if (!grown)
        changed.push_back(name + " changed (" + std::to_string(bytes.size()) + " -> " +
                          std::to_string(now->second.size()) + " bytes)");
    }
  }
  return changed;
}

// Every *.tmp file below `dir`, as a path relative to it.
inline std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> tmp;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.path().extension() == ".tmp") tmp.push_back(fs::relative(entry.path(), dir).string());
  return tmp;
}

// "a, b, c" ("none" for an empty list), for messages.
inline std::string listed(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& i : items) s += (s.empty() ? "" : ", ") + i;
  return s.empty() ? "none" : s;
}

// ----------------------------------------------------------------------------- tiny runs

// A scratch folder holding tiny.toml: the reverse task, d_model 4, one layer each side, 4
// batches of 8 per epoch; `train` adds keys to its [train] table.
inline fs::path tiny_workspace(const std::string& name, const std::string& train = "") {
  const fs::path dir = scratch_dir("fault_" + name);
  std::ofstream(dir / "tiny.toml") << "seed = 3\n[task]\nname = \"reverse\"\n"
                                   << "[data]\nmin_len = 2\nmax_len = 5\nbatch_size = 8\nbatches_per_epoch = 4\n"
                                   << "eval_size = 16\n"
                                   << "[model]\nd_model = 4\nnhead = 1\nnum_encoder_layers = 1\n"
                                   << "num_decoder_layers = 1\ndim_feedforward = 8\ndropout = 0.1\n"
                                   << "[train]\nlr = 3e-3\nschedule = \"constant\"\nwarmup_steps = 2\nlog_every = 1\n"
                                   << train << "[run]\ndir = \"runs\"\n";
  return dir;
}

// The overrides that make examples/translation/numbers.toml a tiny run: d_model 8, one layer
// each side, two steps, 20 validation and 20 test numbers.
inline std::vector<std::string> tiny_translation_sets() {
  return {"model.d_model=8",
          "model.nhead=2",
          "model.num_encoder_layers=1",
          "model.num_decoder_layers=1",
          "model.dim_feedforward=16",
          "data.batches_per_epoch=2",
          "train.epochs=1",
          "train.warmup_steps=0",
          "data.eval_size=20"};
}

// Trains the tiny translation model into <dir>/runs/numbers/ and returns its last.h5.
inline std::string train_tiny_translation(const fs::path& dir) {
  std::vector<std::string> args{"train", std::string(RUNE_SOURCE_DIR) + "/examples/translation/numbers.toml",
                                "--no-progress"};
  for (const std::string& s : tiny_translation_sets()) args.insert(args.end(), {"--set", s});
  const Exit e = run_rune(args, dir.string());
  if (e.code != 0) throw std::runtime_error("the tiny translation run failed (" + e.describe() + "): " + e.output);
  return (dir / "runs" / "numbers" / "checkpoints" / "last.h5").string();
}

// ----------------------------------------------------------------------------- time

// Prints the test's wall time when it ends, and records it as the property "seconds".
class TestClock {
 public:
  ~TestClock() {
    const double s = seconds();
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("[ time ] %s.%s: %.1f s\n", test->test_suite_name(), test->name(), s);
    ::testing::Test::RecordProperty("seconds", std::to_string(s));
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace rune::faults
