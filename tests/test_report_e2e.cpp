// rune report end to end, in a real browser: two tiny runs trained with different configs (one
// with the head analysis's PNGs), their page loaded by headless Chromium (Debian's chromium), its
// rendered DOM checked for the run names, the differing key, the script's end mark and an empty
// error box, and a screenshot written to build/test-artefacts/report.png. Hostile run names and
// config strings, and a run still writing its metrics, render as text without a script error.
// A missing run folder is an error naming it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/helpers.hpp"

namespace rune {
namespace {

namespace fs = std::filesystem;

// The shell command's exit status and its stdout and stderr.
RunResult shell(const std::string& command) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Debian's chromium, or "" (the test then fails: scripts/install-deps.sh installs it).
std::string chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (fs::exists(path)) return path;
  return "";
}

// Headless Chromium on a local file with `mode` (--dump-dom, --screenshot=...): no sandbox (the
// tests run as root), no GPU, and nothing that reaches for the network, in a fresh profile.
RunResult browse(const fs::path& page, const std::string& mode, const fs::path& scratch,
                 const std::string& fragment = "") {
  static int profiles = 0;
  const fs::path profile = scratch / ("chromium-profile-" + std::to_string(++profiles));
  fs::create_directories(profile);
  return shell("timeout 120 '" + chromium() +
               "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
               "--disable-component-update --disable-sync --user-data-dir='" +
               profile.string() + "' " + mode + " 'file://" + fs::absolute(page).string() + fragment + "'");
}

#define REQUIRE_CHROMIUM()                                                                           \
  ASSERT_FALSE(chromium().empty()) << "Debian's chromium is not installed (/usr/bin/chromium): run " \
                                      "scripts/install-deps.sh (as root), which installs it for this browser test"

// The rendered page checked as a person's browser would show it: the script ran to its end and
// reported no error.
void expect_rendered_without_errors(const std::string& dom) {
  EXPECT_NE(dom.find("data-rendered=\"yes\""), std::string::npos) << "the page's script did not finish:\n" << dom;
  const std::size_t box = dom.find("<div id=\"errors\" role=\"alert\">");
  ASSERT_NE(box, std::string::npos) << dom;
  const std::string empty_box = "<div id=\"errors\" role=\"alert\"></div>";
  EXPECT_EQ(dom.compare(box, empty_box.size(), empty_box), 0) << "script errors: " << dom.substr(box, 400);
  // the chart's metric list was filled from the data
  EXPECT_NE(dom.find("<option value=\"loss\">loss</option>"), std::string::npos) << dom;
}

TEST(Report, TwoTrainedRunsRenderInChromium) {
  REQUIRE_CHROMIUM();
  OneThread one_thread;
  const fs::path dir = scratch_dir("report_two_runs");
  std::ofstream(dir / "tiny.toml") << kTinyReverseConfig;
  RunResult r = run_rune("train tiny.toml --no-progress --set run.name=narrow", dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_rune("train tiny.toml --no-progress --set run.name=wide --set model.d_model=32", dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_rune("heads runs/wide/checkpoints/best.h5", dir.string());  // PNGs for the page to show
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(fs::exists(dir / "runs" / "wide" / "heads-test" / "head_importance.png")) << r.output;

  r = run_rune("report runs/narrow runs/wide --out pages/report.html", dir.string());  // pages/ is made
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote pages/report.html: 2 runs"), std::string::npos) << r.output;
  const std::string html = read_file(dir / "pages" / "report.html");
  EXPECT_EQ(html.find("http://"), std::string::npos) << "the page must not reach for the network";
  EXPECT_EQ(html.find("https://"), std::string::npos) << "the page must not reach for the network";
  EXPECT_NE(html.find("src=\"data:image/png;base64,iVBORw0KGgo"), std::string::npos);  // a PNG, inline

  const RunResult dom = browse(dir / "pages" / "report.html", "--dump-dom", dir);
  ASSERT_EQ(dom.status, 0) << dom.output;
  expect_rendered_without_errors(dom.output);
  EXPECT_EQ(dom.output.find("Uncaught"), std::string::npos) << dom.output;
  for (const char* name : {"narrow", "wide"})
    EXPECT_NE(dom.output.find("</span>" + std::string(name) + "</li>"), std::string::npos) << name;
  // the differing key, highlighted, with both values
  EXPECT_NE(dom.output.find("<tr class=\"differs\"><th scope=\"row\">model.d_model</th><td>16</td><td>32</td></tr>"),
            std::string::npos)
      << dom.output;
  EXPECT_NE(dom.output.find("head analysis, test split (rune heads)"), std::string::npos);
  EXPECT_NE(dom.output.find("data-view=\"loss step 0.60\""), std::string::npos);  // the first view

  // another view, asked for in the address: validation loss over time, unsmoothed, log scale
  const RunResult view =
      browse(dir / "pages" / "report.html", "--dump-dom", dir, "#metric=val_loss&x=time&smoothing=0&log=1");
  ASSERT_EQ(view.status, 0) << view.output;
  expect_rendered_without_errors(view.output);
  EXPECT_NE(view.output.find("data-view=\"val_loss time 0.00 log\""), std::string::npos) << view.output;

  // the screenshot, a test artefact
  const fs::path artefacts = fs::path(RUNE_BINARY).parent_path() / "test-artefacts";
  fs::create_directories(artefacts);
  const fs::path shot = artefacts / "report.png";
  fs::remove(shot);
  const RunResult s = browse(dir / "pages" / "report.html",
                             "--screenshot='" + shot.string() + "' --window-size=1280,2000 --hide-scrollbars", dir);
  ASSERT_EQ(s.status, 0) << s.output;
  const std::string png = read_file(shot);
  ASSERT_GT(png.size(), 10000u) << s.output;
  EXPECT_EQ(png.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)), 0);
  // IHDR: width and height, big-endian, at bytes 16 and 20
  auto be32 = [&](std::size_t at) {
    return static_cast<unsigned>(static_cast<unsigned char>(png[at])) << 24 |
           static_cast<unsigned>(static_cast<unsigned char>(png[at + 1])) << 16 |
           static_cast<unsigned>(static_cast<unsigned char>(png[at + 2])) << 8 |
           static_cast<unsigned>(static_cast<unsigned char>(png[at + 3]));
  };
  EXPECT_EQ(be32(16), 1280u);
  EXPECT_EQ(be32(20), 2000u);
}

TEST(Report, HostileNamesAndARunInProgressRenderAsTextInChromium) {
  REQUIRE_CHROMIUM();
  const fs::path dir = scratch_dir("report_hostile");
  const std::string name = "x<b>\"q\"'&y";
  fs::create_directories(dir / "sweep" / name);
  std::ofstream(dir / "sweep" / name / "config.toml")
      << "seed = 1\nnote = \"</script><script>throw new Error('escaped')</script><!--\"\n[task]\nname = \"reverse\"\n";
  std::ofstream(dir / "sweep" / name / "metrics.jsonl")
      << "{\"step\":1,\"loss\":2.5,\"elapsed_s\":0.5}\n{\"step\":2,\"loss\":null,\"elapsed_s\":1}\n"
         "{\"step\":2,\"val_loss\":2,\"val_exact_match\":0.1,\"eval_s\":0.2}\n{\"step\":3,\"lo";
  fs::create_directories(dir / "sweep" / "plain");
  std::ofstream(dir / "sweep" / "plain" / "metrics.jsonl") << "{\"step\":1,\"loss\":2.0,\"elapsed_s\":0.4}\n";
  std::ofstream(dir / "sweep" / "sweep.json") << "{}\n";

  const RunResult r = run_rune("report sweep --out report.html", dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("metrics.jsonl:4 skipped"), std::string::npos) << r.output;
  const RunResult dom = browse(dir / "report.html", "--dump-dom", dir);
  ASSERT_EQ(dom.status, 0) << dom.output;
  expect_rendered_without_errors(dom.output);
  // no element came out of a file: the config string is text in its table cell
  EXPECT_EQ(dom.output.find("<script>throw"), std::string::npos) << "a config string became a script";
  EXPECT_EQ(dom.output.find("<b>\"q"), std::string::npos) << "a run name became markup";
  // a sweep's runs are named sweep/run, and a name is text (serialised escaped again)
  EXPECT_NE(dom.output.find("sweep/x&lt;b&gt;\"q\"'&amp;y"), std::string::npos) << dom.output;
  EXPECT_NE(dom.output.find("&lt;/script&gt;&lt;script&gt;throw new"), std::string::npos) << dom.output;
  EXPECT_NE(dom.output.find("metrics.jsonl:4 skipped"), std::string::npos);
}

TEST(Report, AMissingRunFolderIsAnErrorNamingIt) {
  const fs::path dir = scratch_dir("report_missing");
  fs::create_directories(dir / "runs" / "empty");
  RunResult r = run_rune("report runs/nope --out report.html", dir.string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("rune: runs/nope: no such run folder"), std::string::npos) << r.output;
  r = run_rune("report runs/empty --out report.html", dir.string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("rune: runs/empty: neither a run folder"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "report.html"));
}

}  // namespace
}  // namespace rune
