// rune config [TASK ...] [--markdown]: every config key a task's run reads, grouped by section,
// with its type, default, valid values and description, from the code that reads the keys
// (train/config_reference.hpp). Without a task: every registered task. --markdown prints the
// tables of docs/config.md: the keys every task reads (seed, task.name, [train], [run], the
// optimizer's) once, then each task's own keys.
#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/command.hpp"
#include "train/config_reference.hpp"
#include "train/format.hpp"

namespace rune::cli {

namespace {

using train::join;
using train::KeyReference;

// Sections in the order a config file has them: top-level keys, [task], [data], [model], the
// task's own sections, then the trainer's [train] and [run]. Keys keep their declaration order.
std::vector<std::pair<std::string, std::vector<const KeyReference*>>> by_section(
    const std::vector<KeyReference>& refs) {
  const auto rank = [](const std::string& s) {
    static const std::map<std::string, int> fixed{{"", 0},      {"task", 1},  {"data", 2},
                                                  {"model", 3}, {"train", 5}, {"run", 6}};
    const auto it = fixed.find(s);
    return it == fixed.end() ? 4 : it->second;
  };
  std::vector<std::pair<std::string, std::vector<const KeyReference*>>> sections;
  for (const KeyReference& r : refs) {
    const std::string s = train::key_section(r.info.key);
    auto it = std::find_if(sections.begin(), sections.end(), [&](const auto& p) { return p.first == s; });
    if (it == sections.end()) it = sections.insert(sections.end(), {s, {}});
    it->second.push_back(&r);
  }
  std::stable_sort(sections.begin(), sections.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  return sections;
}

// "train.optimizer = adamw, adam", joined with "and" for several.
std::string condition_text(const KeyReference& r) {
  std::vector<std::string> parts;
  for (const train::KeyCondition& c : r.conditions) parts.push_back(c.key + " = " + join(c.values, ", "));
  return join(parts, " and ");
}

std::string default_text(const KeyReference& r) {
  return r.info.default_rule.empty() ? r.info.default_value : r.info.default_rule;
}

// "integer >= 1", "float in [0, 1)", "string: numbers, tsv"
std::string type_text(const KeyReference& r) {
  if (!r.info.choices.empty()) return r.info.type + ": " + join(r.info.choices, ", ");
  if (r.info.range.empty()) return r.info.type;
  return r.info.type + (r.info.range.front() == '[' ? " in " : " ") + r.info.range;
}

std::string section_title(const std::string& section) { return section.empty() ? "(top level)" : "[" + section + "]"; }

void print_text(const train::TaskInfo& task, const std::vector<KeyReference>& refs) {
  std::printf(
      "%s: %s\n"
      "Every key `rune train` reads for this task, with its default (a default in words is computed\n"
      "from other keys or the data). Every key is optional; one with a condition in parentheses is\n"
      "read only when the condition holds.\n",
      task.name.c_str(), task.description.c_str());
  std::size_t width = 0;
  for (const KeyReference& r : refs) width = std::max(width, r.info.key.size() + 3 + default_text(r).size());
  width = std::min<std::size_t>(width, 44);
  for (const auto& [section, keys] : by_section(refs)) {
    std::printf("\n%s\n", section_title(section).c_str());
    for (const KeyReference* r : keys) {
      const std::string head = r->info.key + " = " + default_text(*r);
      std::printf("  %-*s  %s%s\n", static_cast<int>(width), head.c_str(), type_text(*r).c_str(),
                  r->conditions.empty() ? "" : ("  (" + condition_text(*r) + ")").c_str());
      std::printf("      %s\n", r->info.description.c_str());
    }
  }
}

// Text safe in a Markdown table cell: no column breaks, no HTML tags (<eos>), no emphasis.
std::string md(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|')
      out += "\\|";
    else if (c == '*')
      out += "\\*";
    else if (c == '<')
      out += "&lt;";
    else
      out += c;
  }
  return out;
}

std::string markdown_row(const KeyReference& r) {
  std::string key = "`" + r.info.key + "`";
  if (!r.conditions.empty()) key += " (" + md(condition_text(r)) + ")";
  const std::string def = r.info.default_rule.empty() ? "`" + r.info.default_value + "`" : md(r.info.default_rule);
  const std::string values = r.info.choices.empty() ? md(r.info.range) : md(join(r.info.choices, ", "));
  return "| " + key + " | " + r.info.type + " | " + def + " | " + values + " | " + md(r.info.description) + " |\n";
}

std::string markdown_table(const std::vector<KeyReference>& refs) {
  std::string out;
  for (const auto& [section, keys] : by_section(refs)) {
    out += "\n### " + (section.empty() ? std::string("Top level") : "[" + section + "]") + "\n\n";
    out += "| Key | Type | Default | Valid values | Description |\n|---|---|---|---|---|\n";
    for (const KeyReference* r : keys) out += markdown_row(*r);
  }
  return out;
}

std::string markdown(const std::vector<train::TaskInfo>& tasks) {
  std::vector<std::string> names;
  for (const train::TaskInfo& t : tasks) names.push_back(t.name);
  const bool all = tasks.size() == train::registered_tasks().size();
  std::string out =
      "# Config keys\n\n"
      "Generated by `rune config --markdown" +
      (all ? std::string() : " " + join(names, " ")) +
      "` from the code that reads the keys: do not edit it by hand.\n"
      "A test fails when this file differs from the command's output; regenerate it with\n"
      "`build/rune config --markdown > docs/config.md`.\n\n"
      "Every key is optional. A key with a condition in parentheses is read only when the condition\n"
      "holds (`train.beta1` only for Adam); a default in plain text is computed from other keys or\n"
      "from the data. `rune config TASK` prints the same for one task as plain text.\n";
  // the trainer's keys are the same for every task: listed once
  std::vector<KeyReference> shared;
  std::map<std::string, std::vector<KeyReference>> own;
  for (const train::TaskInfo& t : tasks) {
    for (KeyReference& r : train::config_reference(t.name)) {
      if (r.task_key) {
        own[t.name].push_back(std::move(r));
        continue;
      }
      const auto same =
          std::find_if(shared.begin(), shared.end(), [&](const KeyReference& s) { return s.info.key == r.info.key; });
      if (same == shared.end() && &t == &tasks.front())
        shared.push_back(std::move(r));
      else if (same == shared.end() || markdown_row(*same) != markdown_row(r))
        own[t.name].push_back(std::move(r));  // a trainer key that reads differently for this task
    }
  }
  out +=
      "\n## Every task\n\nThe trainer's keys: the seed, the task, the optimizer and its schedule, checkpoints and the "
      "run folder.\n";
  out += markdown_table(shared);
  for (const train::TaskInfo& t : tasks) {
    out += "\n## Task `" + t.name + "`\n\n" + md(t.description) + ". Its own keys (`rune config " + t.name + "`):\n";
    out += markdown_table(own[t.name]);
  }
  return out;
}

}  // namespace

Command add_config(CLI::App& app) {
  auto names = std::make_shared<std::vector<std::string>>();
  auto as_markdown = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("config", "List every config key a task reads: default, valid values, description");
  c->add_option("task", *names, "The tasks (default: every task; rune tasks lists them)")
      ->check(CLI::IsMember(train::task_names()));
  c->add_flag("--markdown", *as_markdown, "Markdown tables (docs/config.md is `rune config --markdown`)");
  return {c, [names, as_markdown] {
            std::vector<train::TaskInfo> tasks;
            for (const train::TaskInfo& t : train::registered_tasks())
              if (names->empty() || std::find(names->begin(), names->end(), t.name) != names->end()) tasks.push_back(t);
            if (*as_markdown) {
              std::fputs(markdown(tasks).c_str(), stdout);
              return 0;
            }
            for (std::size_t i = 0; i < tasks.size(); ++i) {
              if (i > 0) std::printf("\n\n");
              print_text(tasks[i], train::config_reference(tasks[i].name));
            }
            return 0;
          }};
}

}  // namespace rune::cli
