// Memory (train/memory.hpp): the memory a process may use, sizes as text, and the refusal of a
// config too large for it, which names the keys to blame with their values and where they were
// given, the bytes needed and the memory available.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <functional>

#include "train/memory.hpp"

namespace rune::train {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

const MemoryLimit k24GiB{24.0 * (1 << 30), "this machine has 24 GiB"};

TEST(Memory, SizesAndCountsAsText) {
  EXPECT_EQ(bytes_text(512), "512 bytes");
  EXPECT_EQ(bytes_text(1536), "1.5 KiB");
  EXPECT_EQ(bytes_text(24.0 * (1 << 30)), "24 GiB");
  EXPECT_EQ(bytes_text(std::ldexp(1.0, 60) * 204), "204 EiB");
  EXPECT_EQ(bytes_text(std::ldexp(1.0, 60) * 3e6), "3e6 EiB");
  EXPECT_EQ(count_text(170189), "170,189");
  EXPECT_EQ(count_text(4.1e18), "4.1e18");
}

TEST(Memory, AConfigTooLargeNamesTheKeysTheBytesAndTheMemory) {
  Config c = Config::parse("[model]\nd_model = 64\nnum_layers = 2\n[data]\nbatch_size = 8\n", "run.toml");
  c.set("model.d_model=1000000000");
  const std::vector<SizeKey> keys{{"model.d_model", 1000000000, 2}, {"model.num_layers", 2}, {"model.heads", 1000}};
  const double params = 4.1e18;
  std::string e = error_of([&] { check_memory(c, "the model's 4.1e18 parameters", 4 * params, keys, k24GiB); });
  EXPECT_EQ(e,
            "run.toml (--set): model.d_model = 1000000000: the model's 4.1e18 parameters would need 14.2 EiB "
            "(15,273,690,224 GiB); this machine has 24 GiB");
  // within the limit: nothing to say
  EXPECT_NO_THROW(check_memory(c, "the model", 1e9, keys, k24GiB));
  // no single key accounts for the excess: as many as it takes, largest first, each where given
  e = error_of([&] {
    check_memory(c, "a batch", 5e11, {{"data.batch_size", 8}, {"model.num_layers", 2}, {"model.d_model", 3}}, k24GiB);
  });
  EXPECT_NE(e.find("run.toml: data.batch_size = 8 (line 5), model.d_model = 3 (--set): a batch would need 466 GiB; "
                   "this machine has 24 GiB"),
            std::string::npos)
      << e;
  // a key not given (model.heads, a default) is named only when no given key is in the list
  e = error_of([&] { check_memory(c, "heads", 1e12, {{"model.heads", 1000}}, k24GiB); });
  EXPECT_NE(e.find("run.toml (default): model.heads = 1000: heads would need"), std::string::npos) << e;
  // a key whose size is not a power of its value says how much it accounts for
  e = error_of([&] {
    check_memory(c, "patches", 1e12, {{"model.num_layers", 2}, {"model.d_model", 1, 1, 1e6}}, k24GiB);
  });
  EXPECT_NE(e.find("run.toml (--set): model.d_model = 1: patches would need"), std::string::npos) << e;
}

// The limit is the smaller of the physical memory and the address-space limit (ulimit -v); set in
// a child, so this process keeps its own.
TEST(Memory, AnAddressSpaceLimitIsTheMemoryAvailable) {
  const MemoryLimit machine = available_memory();
  ASSERT_GT(machine.bytes, 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const auto limit = static_cast<rlim_t>(std::min(machine.bytes / 2, 4.0 * (1 << 30)));
    const rlimit r{limit, limit};
    if (::setrlimit(RLIMIT_AS, &r) != 0) ::_exit(2);
    const MemoryLimit m = available_memory();
    ::_exit(m.bytes == static_cast<double>(limit) && m.text.find("(ulimit -v)") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Memory, ActivationsGrowWithEveryDimension) {
  const double base = activation_floats(8, 16, 32, 4, 2);
  EXPECT_DOUBLE_EQ(base, 2 * 8 * 16 * (8 * 32 + 4 * 16));
  EXPECT_DOUBLE_EQ(activation_floats(8, 16, 32, 4, 2, false), 2 * 8 * 16 * 8 * 32) << "tiled attention: no weights";
  EXPECT_GE(activation_floats(1e8, 1e4, 1e9, 1e3, 1e3), 8e24) << "no product wraps around";
}

}  // namespace
}  // namespace rune::train
