// report/plot: the panels' axes over ranges that are hard to tick.
#include <gtest/gtest.h>

#include <filesystem>

#include "report/plot.hpp"
#include "tests/helpers.hpp"

namespace rune::report {
namespace {

namespace fs = std::filesystem;

// A tiny model's first validation: a BLEU of 6e-232 beside exact zeros. Ticks spaced by that
// range never reached its end, and `rune train` hung drawing curves.png.
TEST(Plot, CurvesWhoseValuesBarelyDifferAreDrawn) {
  const fs::path dir = scratch_dir("plot");
  const std::string path = (dir / "curves.png").string();
  const Series loss{"loss", {{1, 4.5}, {6, 4.56}}}, val{"val_loss", {{6, 4.73}}};
  plot_curves(path, "tiny", loss, val,
              {{"val_bleu", {{6, 6.09e-232}}}, {"val_exact_match", {{6, 0.0}}}, {"val_token_accuracy", {{6, 0.0}}}});
  EXPECT_EQ(read_file(path).substr(1, 3), "PNG");
  plot_curves(path, "large and nearly equal", {"loss", {{1, 1e12}, {2, 1e12 + 1e-3}}}, {}, {});
  EXPECT_EQ(read_file(path).substr(1, 3), "PNG");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune::report
