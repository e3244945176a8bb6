// The subcommands' shared output helpers (cli/output): atomic text files and durations.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "train/files.hpp"
#include "tests/helpers.hpp"

namespace rune::train {
namespace {

namespace fs = std::filesystem;

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
  EXPECT_NE(error_of([&] { write_file((dir / "missing" / "b.txt").string(), "x"); }).find("missing/b.txt.tmp"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Output, DurationsReadAsMinutesOrHours) {
  EXPECT_EQ(duration(0), "0:00");
  EXPECT_EQ(duration(-5), "0:00");
  EXPECT_EQ(duration(59.6), "1:00");
  EXPECT_EQ(duration(125), "2:05");
  EXPECT_EQ(duration(3600 + 61), "1:01:01");
}

}  // namespace
}  // namespace rune::train
