// Corruption: every byte of a tiny translation checkpoint flipped in turn (xor 0xFF), each
// damaged copy loaded the way `rune translate` loads a checkpoint (cli::load_task: the file read,
// the task rebuilt from its config, the parameters loaded) and asked for the translations and
// log-probabilities of a few sentences. Each position must be refused with an error naming the
// file, or give exactly the undamaged file's outputs (scores bit for bit): never a signal, never
// a hang, never another answer.
//
// The loads run in children forked from this process once it has loaded everything, each child
// taking a run of positions one after the other in its own copy of the file (flip, load, put
// back), two children at a time. A fork per position would cost about 13 ms of CPU here (the
// child's copy-on-write page faults) against about 1 ms for a load in a warm process. A child
// that dies (a signal; SIGALRM after 10 s on one position is a hang) is replaced, and the
// position it was on is judged again alone in a fresh child: a crash is put on the position
// that causes it, or on the loads before it when that position alone loads fine.
#include <fcntl.h>
#include <malloc.h>
#include <omp.h>

#include <cstring>
#include <optional>

#include "autograd/allocator.hpp"
#include "cli/command.hpp"
#include "tests/faults/faults.hpp"

namespace rune::faults {
namespace {

constexpr std::size_t kPositionsPerChild = 4096;  // then a fresh child, so damage cannot carry far

const std::vector<std::string> kSentences = {"one", "twenty three", "four hundred and five", "nine thousand and twelve",
                                             "seven hundred thousand"};

// What loading `path` as `rune translate` does gives: "refused\n" and the error's message, or
// "loaded\n", a line per sentence (its translation and its log-probability's bits in hex) and
// the notes on them (a word the model never saw, ...).
std::string outcome(const std::string& path) {
  try {
    const std::unique_ptr<cli::LoadedTask> loaded = cli::load_task(path);
    train::Translator& translator = train::capability<train::Translator>(*loaded->task, "checkpoint " + path);
    std::vector<std::string> notes;
    const std::vector<std::string> out = translator.translate(kSentences, &notes);
    std::vector<std::pair<std::string, std::string>> pairs;
    for (std::size_t i = 0; i < out.size(); ++i) pairs.emplace_back(kSentences.at(i), out[i]);
    const std::vector<double> logp = translator.log_probability(pairs, &notes);
    std::string s = "loaded\n";
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::uint64_t bits;
      std::memcpy(&bits, &logp.at(i), sizeof bits);
      char hex[32];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(bits));
      s += out[i] + "\t" + hex + "\n";
    }
    for (const std::string& note : notes) s += "note: " + note + "\n";
    return s;
  } catch (const std::exception& e) {
    return std::string("refused\n") + e.what();
  }
}

// The verdict on one position.
enum class Verdict { refused, identical, crashed, different, hung, unnamed };
const char* const kVerdictNames[] = {"refused",   "identical", "crashed",
                                     "different", "hung",      "refused without naming the file"};

struct Judged {
  Verdict verdict;
  std::string detail;  // the signal, the message or the first line that differs
};

// The verdict on what a load of `path` gave, against the undamaged file's `expected`.
Judged judge(const std::string& result, const std::string& path, const std::string& expected) {
  if (result.rfind("refused\n", 0) == 0) {
    const std::string message = result.substr(8);
    return {message.find(path) != std::string::npos ? Verdict::refused : Verdict::unnamed, message};
  }
  if (result == expected) return {Verdict::identical, ""};
  std::size_t at = 0;
  while (at < result.size() && at < expected.size() && result[at] == expected[at]) ++at;
  const std::size_t line = at == 0 ? std::string::npos : result.rfind('\n', at - 1);
  const std::size_t from = line == std::string::npos ? 0 : line + 1;
  return {Verdict::different, "loaded, but gives \"" + result.substr(from, result.find('\n', from) - from) + "\""};
}

// The verdict on a child that ended before answering (status from waitpid).
Judged judge_death(int status, bool killed_by_us) {
  if (killed_by_us) return {Verdict::hung, "no answer after 30 s"};
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    if (sig == SIGALRM) return {Verdict::hung, "still loading after 10 s"};
    return {Verdict::crashed, "signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")"};
  }
  return {Verdict::crashed, "exit " + std::to_string(WEXITSTATUS(status)) + " before its answer"};
}

// A child judging the positions [next, end) of the file in its own copy of it (its slot).
struct Worker {
  pid_t pid = -1;
  int output = -1;
  std::size_t next = 0, end = 0;  // the position it is on (the first not reported yet), and its run's end
  std::string pending;            // bytes read that are not a whole record yet
  std::chrono::steady_clock::time_point heard = std::chrono::steady_clock::now();  // its last record
  bool killed = false;
};

// Forks a child that takes the positions [from, to) one after the other: flips the byte in
// `slot`, loads it (SIGALRM after 10 s: a hang), puts the byte back and writes a record into
// a pipe: the outcome's length (4 bytes), then outcome(slot). Its stdout
// and stderr are silenced, and it leaves with _exit: the exit handlers would touch (and so copy)
// pages for nothing (the disk-full tests run `rune` itself, exit handlers included).
Worker start_worker(const std::string& slot, const std::string& bytes, std::size_t from, std::size_t to) {
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(out[0]);
    const int null = ::open("/dev/null", O_WRONLY);
    const int file = ::open(slot.c_str(), O_WRONLY);
    if (null < 0 || file < 0 || ::dup2(null, 1) < 0 || ::dup2(null, 2) < 0) ::_exit(126);
    for (std::size_t p = from; p < to; ++p) {
      const char flipped = static_cast<char>(bytes[p] ^ 0xFF);
      if (::pwrite(file, &flipped, 1, static_cast<off_t>(p)) != 1) ::_exit(125);
      ::alarm(10);
      const std::string result = outcome(slot);
      ::alarm(0);
      if (::pwrite(file, &bytes[p], 1, static_cast<off_t>(p)) != 1) ::_exit(125);
      const auto length = static_cast<std::uint32_t>(result.size());
      std::string record(reinterpret_cast<const char*>(&length), sizeof length);
      record += result;
      for (std::size_t done = 0; done < record.size();) {
        const ssize_t n = ::write(out[1], record.data() + done, record.size() - done);
        if (n <= 0) ::_exit(125);
        done += static_cast<std::size_t>(n);
      }
    }
    ::_exit(0);
  }
  ::close(out[1]);
  Worker w;
  w.pid = pid;
  w.output = out[0];
  w.next = from;
  w.end = to;
  return w;
}

// Reads what the worker wrote; returns its whole records' outcomes in order, and false at the
// end of its output.
bool read_records(Worker& w, std::vector<std::string>& outcomes) {
  char buf[65536];
  const ssize_t n = ::read(w.output, buf, sizeof buf);
  if (n < 0 && errno == EINTR) return true;
  if (n <= 0) return false;
  w.pending.append(buf, static_cast<std::size_t>(n));
  constexpr std::size_t kHead = sizeof(std::uint32_t);
  while (w.pending.size() >= kHead) {
    std::uint32_t length;
    std::memcpy(&length, w.pending.data(), sizeof length);
    if (w.pending.size() < kHead + length) break;
    outcomes.push_back(w.pending.substr(kHead, length));
    w.pending.erase(0, kHead + length);
  }
  return true;
}

// Reads the worker's output to its end and reaps it; its status.
int drain(Worker& w, std::vector<std::string>& outcomes) {
  while (read_records(w, outcomes)) {
  }
  ::close(w.output);
  int status = 0;
  ::waitpid(w.pid, &status, 0);
  return status;
}

// The bytes around `at`, printable ones as they are, for a reader to place a position.
std::string context(const std::string& bytes, std::size_t at) {
  std::string s;
  for (std::size_t i = at < 12 ? 0 : at - 12; i < std::min(bytes.size(), at + 12); ++i) {
    const unsigned char b = static_cast<unsigned char>(bytes[i]);
    s += i == at ? "[" : "";
    s += b >= 32 && b < 127 ? std::string(1, static_cast<char>(b)) : ".";
    s += i == at ? "]" : "";
  }
  return s;
}

TEST(ByteFlips, EveryFlippedByteOfACheckpointIsRefusedByNameOrChangesNothing) {
  const TestClock clock;
  omp_set_num_threads(1);  // before any parallel region: the forked children have no thread pool
  const fs::path dir = scratch_dir("fault_flips");
  const std::string original = train_tiny_translation(dir);
  const std::string bytes = read_file(original);
  std::printf("checkpoint %s: %zu bytes\n", original.c_str(), bytes.size());
  ::testing::Test::RecordProperty("checkpoint_bytes", std::to_string(bytes.size()));

  // a copy of the file per child running at once (two cores), in which it flips its bytes
  constexpr std::size_t kSlots = 2;
  std::vector<std::string> slots;
  const auto copy_into = [&](const std::string& slot) {
    std::ofstream(slot, std::ios::binary | std::ios::trunc) << bytes;
  };
  for (std::size_t i = 0; i < kSlots; ++i) {
    slots.push_back((dir / ("damaged-" + std::to_string(i) + ".h5")).string());
    copy_into(slots.back());
  }
  // the undamaged outputs, and a refusal: this process loads everything the children then find
  // loaded (and the symbols of both paths bound)
  const std::string expected = outcome(slots[0]);
  ASSERT_EQ(expected.rfind("loaded\n", 0), 0u) << expected;
  std::printf("undamaged, the outputs' beginnings:\n");
  for (std::size_t at = 7, end; (end = expected.find('\n', at)) != std::string::npos; at = end + 1)
    std::printf("  %s\n", expected.substr(at, std::min<std::size_t>(end - at, 100)).c_str());
  {
    Worker w = start_worker(slots[0], bytes, 0, 1);
    std::vector<std::string> outcomes;
    const int status = drain(w, outcomes);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0 && outcomes.size() == 1) << status;
    ASSERT_EQ(judge(outcomes[0], slots[0], expected).verdict, Verdict::refused) << outcomes[0];
  }
  empty_cache();  // a smaller process forks faster
  ::malloc_trim(0);

  std::map<Verdict, std::size_t> counts;
  std::map<Verdict, std::vector<std::string>> examples;  // the first few of each failing verdict
  const auto tally = [&](std::size_t position, const Judged& j) {
    ++counts[j.verdict];
    if (j.verdict != Verdict::refused && j.verdict != Verdict::identical && examples[j.verdict].size() < 8)
      examples[j.verdict].push_back("byte " + std::to_string(position) + " (" + context(bytes, position) +
                                    "): " + j.detail);
  };
  // a worker that died: the position it was on is judged again alone, in a fresh child
  const auto judge_alone = [&](const std::string& slot, std::size_t position, const Judged& in_run) {
    copy_into(slot);
    Worker w = start_worker(slot, bytes, position, position + 1);
    std::vector<std::string> outcomes;
    const int status = drain(w, outcomes);
    copy_into(slot);
    if (outcomes.empty()) return judge_death(status, false);
    const Judged alone = judge(outcomes[0], slot, expected);
    if (alone.verdict != Verdict::refused && alone.verdict != Verdict::identical) return alone;
    return Judged{in_run.verdict, in_run.detail + " after the loads of earlier positions in the same process (alone: " +
                                      kVerdictNames[static_cast<int>(alone.verdict)] + ")"};
  };

  std::vector<std::optional<Worker>> workers(kSlots);
  std::size_t queued = 0;  // positions handed out
  while (queued < bytes.size() || std::any_of(workers.begin(), workers.end(), [](auto& w) { return w.has_value(); })) {
    for (std::size_t s = 0; s < kSlots && queued < bytes.size(); ++s)
      if (!workers[s]) {
        const std::size_t to = std::min(bytes.size(), queued + kPositionsPerChild);
        workers[s] = start_worker(slots[s], bytes, queued, to);
        queued = to;
      }
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t s = 0; s < kSlots; ++s)
      if (workers[s]) fds.push_back({workers[s]->output, POLLIN, 0}), which.push_back(s);
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) FAIL() << "poll failed";
    for (std::size_t k = 0; k < fds.size(); ++k) {
      const std::size_t s = which[k];
      Worker& w = *workers[s];
      std::vector<std::string> outcomes;
      bool open = true;
      if (fds[k].revents) {
        open = read_records(w, outcomes);
        if (!outcomes.empty()) w.heard = std::chrono::steady_clock::now();
      } else if (!w.killed && std::chrono::steady_clock::now() - w.heard > std::chrono::seconds(30)) {
        ::kill(w.pid, SIGKILL);  // stuck where its own alarm cannot end it
        w.killed = true;
      }
      for (const std::string& o : outcomes) tally(w.next++, judge(o, slots[s], expected));
      if (open) continue;
      ::close(w.output);
      int status = 0;
      ::waitpid(w.pid, &status, 0);
      const std::size_t position = w.next, end = w.end;
      const bool finished = WIFEXITED(status) && WEXITSTATUS(status) == 0 && position == end, killed = w.killed;
      workers[s].reset();
      if (finished) continue;
      tally(position, judge_alone(slots[s], position, judge_death(status, killed)));
      if (position + 1 < end) workers[s] = start_worker(slots[s], bytes, position + 1, end);
    }
  }

  std::size_t flipped = 0;
  for (const auto& [verdict, n] : counts) flipped += n;
  std::printf("%zu positions flipped:", flipped);
  for (int v = 0; v <= static_cast<int>(Verdict::unnamed); ++v) {
    const std::size_t n = counts[static_cast<Verdict>(v)];
    std::printf(" %s %zu%s", kVerdictNames[v], n, v == static_cast<int>(Verdict::unnamed) ? "\n" : ",");
    std::string key = kVerdictNames[v];
    std::replace(key.begin(), key.end(), ' ', '_');
    ::testing::Test::RecordProperty(key, std::to_string(n));
  }
  for (const auto& [verdict, lines] : examples) {
    std::printf("%s, the first %zu:\n", kVerdictNames[static_cast<int>(verdict)], lines.size());
    for (const std::string& l : lines) std::printf("  %s\n", l.c_str());
  }
  EXPECT_EQ(flipped, bytes.size());
  EXPECT_EQ(counts[Verdict::crashed], 0u) << "flipped bytes that crash the loader";
  EXPECT_EQ(counts[Verdict::different], 0u) << "flipped bytes that load to other outputs";
  EXPECT_EQ(counts[Verdict::hung], 0u) << "flipped bytes that hang the loader";
  EXPECT_EQ(counts[Verdict::unnamed], 0u) << "flipped bytes refused without naming the file";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune::faults
