// rune tasks: the registered tasks, what each is, and the capabilities it offers.
#include <cstdio>

#include "cli/command.hpp"

namespace rune::cli {

Command add_tasks(CLI::App& app) {
  CLI::App* c = app.add_subcommand("tasks", "List the tasks a config can name (task.name) and what each can do");
  return {c, [] {
            for (const train::TaskInfo& t : train::registered_tasks()) {
              std::string caps;
              for (const std::string& cap : t.capabilities) caps += (caps.empty() ? "" : ", ") + cap;
              std::printf("%-12s %s\n%-12s can: train%s%s\n", t.name.c_str(), t.description.c_str(), "",
                          caps.empty() ? "" : ", ", caps.c_str());
            }
            return 0;
          }};
}

}  // namespace rune::cli
