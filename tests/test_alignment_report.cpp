// report/alignment_report: the files `rune align` writes, from a hand-built result: the CSV's rows,
// the Markdown's sentence on the best head, and a readable PNG with gold and predicted links drawn.
#include "report/alignment_report.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "report/plot.hpp"
#include "tests/helpers.hpp"

namespace rune::report {
namespace {

namespace fs = std::filesystem;
using namespace analysis;

// "a b c" -> "c b a" with one cross layer of two heads: head 0 attends to the mirrored word (right),
// head 1 to the same position (the diagonal). Their mean ties on every row; the first of equals
// is right on the last two.
AlignmentExample reversal() {
  AlignmentExample e;
  e.name = "pair 0";
  e.source_words = {"a", "b", "c"};
  e.target_words = {"c", "b", "a"};
  e.gold = {{2, 0}, {1, 1}, {0, 2}};
  e.source_word_of = {0, 1, 2};
  e.target_word_of = {0, 1, 2, -1};
  std::vector<float> w(2 * 4 * 3, 0.0f);
  for (int q = 0; q < 4; ++q) {
    w[static_cast<std::size_t>(q * 3 + (q < 3 ? 2 - q : 0))] = 1.0f;
    w[static_cast<std::size_t>((4 + q) * 3 + (q < 3 ? q : 0))] = 1.0f;
  }
  e.attention.layers.push_back({"cross", 0, from_vector(w, {2, 4, 3})});
  return e;
}

AlignmentResult result() {
  AlignmentScorer scorer;
  scorer.add(reversal());
  AlignmentResult r;
  r.split = "test";
  r.examples = scorer.examples();
  r.gold_links = scorer.gold_links();
  r.candidates = scorer.candidates();
  r.best = best_head(r.candidates);
  r.best_chosen_on = "test";
  r.shown = reversal();
  return r;
}

// Pixels of the PNG (3, H, W) within `tolerance` of the colour (r, g, b) in bytes.
std::int64_t pixels_of(const std::vector<std::uint8_t>& img, int H, int W, int r, int g, int b, int tolerance) {
  const std::size_t plane = static_cast<std::size_t>(H) * static_cast<std::size_t>(W);
  std::int64_t n = 0;
  for (std::size_t i = 0; i < plane; ++i)
    n += std::abs(img[i] - r) <= tolerance && std::abs(img[plane + i] - g) <= tolerance &&
         std::abs(img[2 * plane + i] - b) <= tolerance;
  return n;
}

TEST(AlignmentReport, WritesTheTableTheSentenceAndThePicture) {
  const fs::path dir = scratch_dir("alignment_report");
  const std::vector<std::string> written = write_alignment_report(result(), (dir / "align-test").string(), "best.h5");
  ASSERT_EQ(written.size(), 3u);
  for (const std::string& f : written) EXPECT_TRUE(fs::exists(f)) << f;

  const std::string csv = read_file(dir / "align-test/alignment.csv");
  EXPECT_EQ(csv,
            "candidate,layer,head,links,gold_links,correct_links,precision,recall,aer,best\n"
            "\"layer 0 head 0\",0,0,3,3,3,1,1,0,yes\n"
            "\"layer 0 head 1\",0,1,3,3,1,0.333333333,0.333333333,0.666666667,no\n"
            "\"layer 0 mean\",0,,3,3,2,0.666666667,0.666666667,0.333333333,no\n"
            "\"all heads mean\",,,3,3,2,0.666666667,0.666666667,0.333333333,no\n"
            "\"position baseline\",,,3,3,1,0.333333333,0.333333333,0.666666667,no\n");

  const std::string md = read_file(dir / "align-test/alignment.md");
  for (const char* s : {"1 examples of the test split with 3 gold links",
                        "The best head, chosen by its AER on the test split, is layer 0 head 0 (AER 0.000, "
                        "precision 1.000, recall 1.000 on the test split); the position baseline reaches AER 0.667",
                        "| **layer 0 head 0** (best) | 3 | 3 | 1.000 | 1.000 | 0.000 |",
                        "| position baseline | 3 | 1 | 0.333 | 0.333 | 0.667 |", "](alignment.png)", "Och & Ney 2003"})
    EXPECT_NE(md.find(s), std::string::npos) << s << "\n" << md;

  int H = 0, W = 0;
  const std::vector<std::uint8_t> png = read_png((dir / "align-test/alignment.png").string(), 3, H, W);
  EXPECT_GT(H, 100);
  EXPECT_GT(W, 100);
  // amber frames (0.96, 0.62, 0) and red dots (0.86, 0.08, 0.08): both drawn, the legend's and the links'
  EXPECT_GT(pixels_of(png, H, W, 245, 158, 0, 3), 200);
  EXPECT_GT(pixels_of(png, H, W, 219, 20, 20, 3), 200);
  fs::remove_all(dir);
}

TEST(AlignmentReport, AHeadChosenOnAnotherSplitIsSaidSo) {
  AlignmentResult r = result();
  r.best = 1;
  r.best_chosen_on = "val";
  EXPECT_NE(alignment_summary(r).find("The best head, chosen by its AER on the val split, is layer 0 head 1 (AER "
                                      "0.667, precision 0.333, recall 0.333 on the test split)"),
            std::string::npos)
      << alignment_summary(r);
}

TEST(AlignmentReport, LinksOutsideTheMapAreRefused) {
  const fs::path dir = scratch_dir("alignment_plot");
  const Heatmap map{"head", {{0.5, 0.5}}, {"x"}, {"a", "b"}};
  EXPECT_NE(error_of([&] {
              plot_alignment((dir / "a.png").string(), "t", map, {{0, 2}}, {});
            }).find("plot_alignment: link (0, 2) outside the 1x2 map"),
            std::string::npos);
  plot_alignment((dir / "a.png").string(), "t", map, {{0, 1}}, {{0, 0}});
  EXPECT_EQ(read_file(dir / "a.png").substr(1, 3), "PNG");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune::report
