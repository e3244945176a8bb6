// report/html_report: base64 against RFC 4648's vectors, escaping for HTML and for JSON inside a
// script element, the metric direction rule, the elapsed-time axis of validation lines, final and
// best values, reading run and sweep folders (a truncated metrics line, missing files, PNGs), and
// the page: hostile names and config strings stay text, differing keys come first.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "report/html_report.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

namespace fs = std::filesystem;
using report::Direction;

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

const std::string kPng = std::string("\x89PNG\r\n\x1a\n", 8) + "not really the rest of a PNG";

// A reverse-task config, as a run folder holds it (the keys a tiny run gives), with `extra` lines.
std::string config_text(const std::string& d_model, const std::string& extra = "") {
  return "seed = 3\n" + extra + "[task]\nname = \"reverse\"\n[model]\nd_model = " + d_model +
         "\nnhead = 2\n[train]\nlr = 0.003\nschedule = \"constant\"\n";
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

TEST(HtmlReport, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(report::base64(""), "");
  EXPECT_EQ(report::base64("f"), "Zg==");
  EXPECT_EQ(report::base64("fo"), "Zm8=");
  EXPECT_EQ(report::base64("foo"), "Zm9v");
  EXPECT_EQ(report::base64("foob"), "Zm9vYg==");
  EXPECT_EQ(report::base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(report::base64("foobar"), "Zm9vYmFy");
  // every byte value, through the last two letters of the alphabet
  EXPECT_EQ(report::base64(std::string("\x00\xff\xfe", 3)), "AP/+");
  EXPECT_EQ(report::base64(std::string("\xfb\xff", 2)), "+/8=");
  EXPECT_EQ(report::base64(std::string(1, '\0')), "AA==");
}

TEST(HtmlReport, HtmlEscapeLeavesNoMarkup) {
  EXPECT_EQ(report::html_escape("a<b>\"c\"'d'&e"), "a&lt;b&gt;&quot;c&quot;&#39;d&#39;&amp;e");
  EXPECT_EQ(report::html_escape("plain text, été"), "plain text, été");
}

TEST(HtmlReport, JsonForScriptCannotCloseTheElementAndReadsBackTheSame) {
  const std::string hostile = "</script><script>alert(1)</script><!-- & \xE2\x80\xA8 end";
  const nlohmann::json j{{"name", hostile}};
  const std::string safe = report::json_for_script(j.dump());
  EXPECT_EQ(safe.find('<'), std::string::npos) << safe;
  EXPECT_EQ(safe.find('>'), std::string::npos) << safe;
  EXPECT_EQ(safe.find('&'), std::string::npos) << safe;
  EXPECT_EQ(safe.find("\xE2\x80\xA8"), std::string::npos) << safe;
  EXPECT_EQ(nlohmann::json::parse(safe).at("name").get<std::string>(), hostile);
}

TEST(HtmlReport, DirectionByName) {
  for (const char* up :
       {"val_accuracy", "val_exact_match", "val_bleu", "val_sacrebleu", "val_chrf", "val_token_accuracy"})
    EXPECT_EQ(report::direction_by_name(up), Direction::higher) << up;
  for (const char* down : {"loss", "val_loss", "val_perplexity", "val_bits_per_char", "val_bpc", "val_error_rate"})
    EXPECT_EQ(report::direction_by_name(down), Direction::lower) << down;
  for (const char* unknown : {"lr", "grad_norm", "val_length_ratio"})
    EXPECT_EQ(report::direction_by_name(unknown), Direction::unknown) << unknown;
}

TEST(HtmlReport, ValidationLinesSitOnTheTimeAxisAfterTheirStep) {
  const double nan = std::nan("");
  const std::vector<train::MetricsRecord> records{
      {{"step", 2}, {"loss", 1}, {"elapsed_s", 10}},
      {{"step", 3}, {"val_loss", 1}, {"eval_s", 1}},  // between 10 (step 2) and 30 (step 4): 20, plus 1
      {{"step", 4}, {"loss", 1}, {"elapsed_s", 30}},
      {{"step", 4}, {"val_loss", 1}, {"eval_s", 2.5}},  // after step 4's training line: 30 + 2.5
      {{"step", 6}, {"val_loss", 1}, {"eval_s", nan}},  // past the last training line: its time
      {{"loss", 1}},                                    // no step: no time
  };
  const std::vector<double> t = report::record_times(records);
  ASSERT_EQ(t.size(), records.size());
  EXPECT_DOUBLE_EQ(t[0], 10);
  EXPECT_DOUBLE_EQ(t[1], 21);
  EXPECT_DOUBLE_EQ(t[2], 30);
  EXPECT_DOUBLE_EQ(t[3], 32.5);
  EXPECT_DOUBLE_EQ(t[4], 30);
  EXPECT_TRUE(std::isnan(t[5]));
  // a log without elapsed_s has no time axis
  EXPECT_TRUE(std::isnan(report::record_times({{{"step", 1}, {"val_loss", 1}}})[0]));
}

TEST(HtmlReport, FinalAndBestFollowTheDirection) {
  const double nan = std::nan("");
  const std::vector<train::MetricsRecord> records{
      {{"step", 1}, {"val_acc", 0.5}}, {{"step", 2}, {"val_acc", 0.9}}, {{"step", 3}, {"val_acc", 0.9}},
      {{"step", 4}, {"val_acc", 0.7}}, {{"step", 5}, {"loss", 2}},      {{"step", 6}, {"val_acc", nan}},
  };
  const report::MetricSummary up = report::summarize(records, "val_acc", Direction::higher);
  ASSERT_TRUE(up.final_value && up.best_value);
  EXPECT_EQ(*up.final_value, 0.7);  // the last finite value
  EXPECT_EQ(up.final_step, 4);
  EXPECT_EQ(*up.best_value, 0.9);
  EXPECT_EQ(up.best_step, 3);  // of equal values the later, as best.h5
  const report::MetricSummary down = report::summarize(records, "val_acc", Direction::lower);
  EXPECT_EQ(*down.best_value, 0.5);
  EXPECT_EQ(down.best_step, 1);
  EXPECT_FALSE(report::summarize(records, "val_acc", Direction::unknown).best_value);
  EXPECT_FALSE(report::summarize(records, "val_bleu", Direction::higher).final_value);
}

TEST(HtmlReport, ReadsARunInProgress) {
  const fs::path dir = scratch_dir("html_report_run") / "run-a";
  write(dir / "config.toml", config_text("16"));
  write(dir / "metrics.jsonl",
        "{\"step\":1,\"loss\":2.5,\"elapsed_s\":0.5}\n"
        "{\"step\":2,\"loss\":null,\"elapsed_s\":1.0}\n"
        "{\"step\":2,\"val_loss\":2.0,\"val_exact_match\":0.25,\"eval_s\":0.1}\n"
        "{\"step\":3,\"loss\":2.1,\"elaps");  // the line being written
  write(dir / "eval-test.json", "{\"step\":2,\"exact_match\":0.5,\"loss\":1.75}\n");
  write(dir / "curves.png", kPng);
  write(dir / "checkpoints" / "inside.png", kPng);
  write(dir / "heads-test" / "head_importance.png", kPng);
  write(dir / "multi_head_attention_map.png", kPng);
  write(dir / "fake.png", "GIF89a, not a PNG");

  const report::RunData run = report::read_run(dir.string());
  EXPECT_EQ(run.name, "run-a");
  ASSERT_EQ(run.records.size(), 3u);
  EXPECT_TRUE(std::isnan(run.records[1].at("loss")));  // null reads as NaN
  EXPECT_EQ(run.primary_metric, "val_exact_match");    // the reverse task's, from the task itself
  EXPECT_EQ(run.primary_direction, Direction::higher);
  const std::vector<std::pair<std::string, std::string>> want_config{
      {"model.d_model", "16"},      {"model.nhead", "2"},  {"seed", "3"},
      {"task.name", "\"reverse\""}, {"train.lr", "0.003"}, {"train.schedule", "\"constant\""}};
  EXPECT_EQ(run.config, want_config);
  ASSERT_EQ(run.evaluations.size(), 1u);
  EXPECT_EQ(run.evaluations[0].split, "test");
  EXPECT_EQ(run.evaluations[0].metrics.at("exact_match"), 0.5);
  // the PNGs by path, curves.png and checkpoints/ aside, the fake one named in the notes
  ASSERT_EQ(run.images.size(), 2u);
  EXPECT_EQ(run.images[0].path, "heads-test/head_importance.png");
  EXPECT_EQ(run.images[0].caption, "head analysis, test split (rune heads)");
  EXPECT_EQ(run.images[0].png, kPng);
  EXPECT_EQ(run.images[1].path, "multi_head_attention_map.png");
  std::string notes;
  for (const std::string& n : run.notes) notes += n + "\n";
  EXPECT_NE(notes.find("metrics.jsonl:4 skipped"), std::string::npos) << notes;
  EXPECT_NE(notes.find("fake.png left out: not a PNG"), std::string::npos) << notes;
  EXPECT_EQ(notes.find("no validation"), std::string::npos) << notes;
}

TEST(HtmlReport, ARunWithoutValidationOrConfigSaysSo) {
  const fs::path dir = scratch_dir("html_report_bare") / "bare";
  write(dir / "metrics.jsonl", "{\"step\":1,\"loss\":2.5,\"elapsed_s\":0.5}\n");
  const report::RunData run = report::read_run(dir.string());
  EXPECT_TRUE(run.config.empty());
  EXPECT_EQ(run.primary_metric, "");
  std::string notes;
  for (const std::string& n : run.notes) notes += n + "\n";
  EXPECT_NE(notes.find("no config.toml"), std::string::npos) << notes;
  EXPECT_NE(notes.find("no validation line yet"), std::string::npos) << notes;
  // the page still draws: the metrics table says there is no validation yet
  const std::string page = report::html_report({run});
  EXPECT_NE(page.find("No run has a validation line yet"), std::string::npos);
  EXPECT_NE(page.find("One run: nothing to compare"), std::string::npos);
}

TEST(HtmlReport, RunFoldersExpandSweepsAndNameWhatIsWrong) {
  const fs::path root = scratch_dir("html_report_folders");
  write(root / "single" / "metrics.jsonl", "");
  write(root / "sweep" / "lr=0.01" / "config.toml", config_text("16"));
  write(root / "sweep" / "lr=0.001" / "metrics.jsonl", "");
  write(root / "sweep" / "sweep.json", "{}");
  fs::create_directories(root / "sweep" / "not-a-run");
  fs::create_directories(root / "empty");
  write(root / "file.txt", "x");
  write(root / "other" / "single" / "config.toml", config_text("32"));

  const std::vector<report::RunFolder> f = report::run_folders({(root / "single").string(), (root / "sweep").string()});
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].name, "single");
  EXPECT_EQ(f[1].name, "sweep/lr=0.001");
  EXPECT_EQ(f[2].name, "sweep/lr=0.01");
  EXPECT_EQ(f[2].path, (root / "sweep" / "lr=0.01").string());
  // two runs of one name are told apart by their paths
  const std::vector<report::RunFolder> twins =
      report::run_folders({(root / "single").string(), (root / "other" / "single").string() + "/"});
  EXPECT_EQ(twins[0].name, (root / "single").string());
  EXPECT_EQ(twins[1].name, (root / "other" / "single").string() + "/");

  const std::string missing = (root / "missing").string();
  EXPECT_EQ(error_of([&] { report::run_folders({missing}); }), missing + ": no such run folder");
  EXPECT_NE(error_of([&] { report::run_folders({(root / "file.txt").string()}); }).find("file.txt: not a folder"),
            std::string::npos);
  EXPECT_NE(error_of([&] { report::run_folders({(root / "empty").string()}); }).find("empty: neither a run folder"),
            std::string::npos);
  EXPECT_NE(error_of([&] { report::read_run(missing); }).find(missing), std::string::npos);
}

TEST(HtmlReport, HostileNamesAndConfigStringsStayText) {
  const fs::path root = scratch_dir("html_report_hostile");
  const std::string name = "a<b>\"c\"'d'&e";
  write(root / name / "config.toml",
        config_text("16", "note = \"</script><script>alert(1)</script><!--\"\n"));  // an unknown key: still shown
  write(root / name / "metrics.jsonl", "{\"step\":1,\"loss\":2.5,\"elapsed_s\":0.5}\n");
  write(root / "plain" / "config.toml", config_text("32"));
  write(root / "plain" / "metrics.jsonl", "{\"step\":1,\"loss\":2.0,\"elapsed_s\":0.4}\n");
  std::vector<report::RunData> runs;
  for (const report::RunFolder& f : report::run_folders({(root / name).string(), (root / "plain").string()}))
    runs.push_back(report::read_run(f.path, f.name));
  const std::string page = report::html_report(runs, "title </title><b>");

  // the page's own three scripts (the error handler, the data, the drawing) and nothing else
  EXPECT_EQ(count(page, "<script"), 3u);
  EXPECT_EQ(count(page, "</script"), 3u);
  EXPECT_EQ(count(page, "<!--"), 0u);
  EXPECT_EQ(count(page, "</title>"), 1u);
  EXPECT_NE(page.find("a&lt;b&gt;&quot;c&quot;&#39;d&#39;&amp;e"), std::string::npos);
  EXPECT_NE(page.find("&lt;/script&gt;&lt;script&gt;alert(1)"), std::string::npos);
  // the data element reads back as the name
  const std::size_t begin = page.find("id=\"rune-data\">") + 15, end = page.find("</script>", begin);
  const nlohmann::json data = nlohmann::json::parse(page.substr(begin, end - begin));
  EXPECT_EQ(data.at("runs").at(0).at("name").get<std::string>(), name);
  EXPECT_EQ(data.at("default").get<std::string>(), "loss");
}

TEST(HtmlReport, DifferingKeysComeFirstAndMarked) {
  const fs::path root = scratch_dir("html_report_config");
  write(root / "small" / "config.toml", config_text("16"));
  write(root / "wide" / "config.toml", config_text("32", "extra = 1\n"));
  for (const char* run : {"small", "wide"})
    write(root / run / "metrics.jsonl",
          "{\"step\":1,\"loss\":2.5,\"elapsed_s\":0.5}\n{\"step\":1,\"val_exact_match\":0.5,\"val_loss\":2,"
          "\"eval_s\":0.1}\n");
  const std::string page =
      report::html_report({report::read_run((root / "small").string()), report::read_run((root / "wide").string())});
  const std::size_t d_model = page.find(
      "<tr class=\"differs\"><th scope=\"row\">model.d_model</th><td>16</td>"
      "<td>32</td></tr>");
  const std::size_t extra = page.find("<tr class=\"differs\"><th scope=\"row\">extra</th><td>&ndash;</td>");
  const std::size_t nhead = page.find("<tr><th scope=\"row\">model.nhead</th><td>2</td><td>2</td></tr>");
  ASSERT_NE(d_model, std::string::npos) << page;
  ASSERT_NE(extra, std::string::npos) << page;
  ASSERT_NE(nhead, std::string::npos) << page;
  EXPECT_LT(d_model, nhead);
  EXPECT_LT(extra, nhead);
  EXPECT_NE(page.find("2 keys differ"), std::string::npos);
  EXPECT_NE(page.find("val_exact_match &uarr; &#9733;"), std::string::npos);  // the task's primary metric
  // both runs reach the best of both columns: all four cells in bold
  EXPECT_EQ(count(page, "<td class=\"top\">"), 4u);
}

TEST(HtmlReport, TwentyRunsGetTwentyColours) {
  const fs::path root = scratch_dir("html_report_twenty");
  std::vector<report::RunData> runs;
  for (int i = 0; i < 20; ++i) {
    const fs::path dir = root / ("run-" + std::to_string(i));
    write(dir / "metrics.jsonl", "{\"step\":1,\"loss\":" + std::to_string(i) + ",\"elapsed_s\":0.5}\n");
    runs.push_back(report::read_run(dir.string()));
  }
  const std::string page = report::html_report(runs);
  const std::size_t begin = page.find("id=\"rune-data\">") + 15, end = page.find("</script>", begin);
  const nlohmann::json data = nlohmann::json::parse(page.substr(begin, end - begin));
  std::set<std::string> colours;
  for (const auto& run : data.at("runs")) colours.insert(run.at("color").get<std::string>());
  EXPECT_EQ(colours.size(), 20u);
  EXPECT_EQ(count(page, "<li data-run="), 20u);
}

TEST(HtmlReport, WrittenAtomically) {
  const fs::path dir = scratch_dir("html_report_write");
  write(dir / "run" / "metrics.jsonl", "{\"step\":1,\"loss\":2.5,\"elapsed_s\":0.5}\n");
  const std::string out = (dir / "report.html").string();
  report::write_html_report(out, {report::read_run((dir / "run").string())});
  EXPECT_EQ(read_file(out).rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

}  // namespace
}  // namespace rune
