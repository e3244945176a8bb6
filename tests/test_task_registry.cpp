// The task registry (train/task.hpp): registration by name with capabilities, make_task by the
// config's task.name, and capabilities asked for by type, with an error naming who has one.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "nn/linear.hpp"
#include "tests/helpers.hpp"
#include "train/task.hpp"

namespace rune::train {
namespace {

// A task with one capability, registered the way examples/<task>/ registers its own.
class EchoTask : public Task, public Translator {
 public:
  EchoTask(Config& c, const TaskContext&)
      : width_(c.integer("model.width", 3, {1}, "the linear layer's width")),
        net_(std::make_shared<nn::Linear>(width_, width_)) {}
  nn::Module& model() override { return *net_; }
  std::int64_t batches_per_epoch() const override { return 1; }
  BatchLoss train_batch(std::int64_t, std::int64_t) override { return {}; }
  std::map<std::string, double> evaluate(const std::string&) override { return {{"score", 1.0}}; }
  std::string primary_metric() const override { return "score"; }
  bool higher_is_better() const override { return true; }
  std::vector<std::string> translate(const std::vector<std::string>& s, std::vector<std::string>*) override {
    return s;
  }
  std::vector<double> log_probability(const std::vector<std::pair<std::string, std::string>>& p,
                                      std::vector<std::string>*) override {
    return std::vector<double>(p.size(), 0.0);
  }
  std::int64_t width() const { return width_; }

 private:
  std::int64_t width_;
  std::shared_ptr<nn::Linear> net_;
};

const bool echo_registered = register_task<EchoTask, Translator>("test_echo", "echoes its input");
const bool mute_registered = register_task<EchoTask>("test_mute", "registered without capabilities");

TEST(TaskRegistry, RegisteredTasksAreListedWithTheirCapabilities) {
  ASSERT_TRUE(echo_registered && mute_registered);
  const std::vector<std::string> names = task_names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (const TaskInfo& t : registered_tasks())
    if (t.name == "test_echo") {
      EXPECT_EQ(t.description, "echoes its input");
      EXPECT_EQ(t.capabilities, std::vector<std::string>{Translator::capability});
    }
  EXPECT_NE(tasks_with("translate").find("test_echo"), std::string::npos);
  EXPECT_EQ(tasks_with("translate").find("test_mute"), std::string::npos);
  EXPECT_EQ(tasks_with("no such capability"), "none");
}

TEST(TaskRegistry, MakeTaskBuildsTheConfigsTaskAndNamesIt) {
  Config c = Config::parse("[task]\nname = \"test_echo\"\n[model]\nwidth = 5\n", "echo.toml");
  Generator g(0);
  const std::unique_ptr<Task> task = make_task(c, {0, &g, &g});
  EXPECT_EQ(task->name(), "test_echo");
  EXPECT_EQ(static_cast<EchoTask&>(*task).width(), 5);
  Translator& t = capability<Translator>(*task, "echo.h5");
  EXPECT_EQ(t.translate({"a", "b"}, nullptr), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(find_capability<EvalReports>(*task), nullptr);
}

TEST(TaskRegistry, AMissingCapabilityNamesTheTaskAndWhoHasIt) {
  Generator g(0);
  Config m = Config::parse("[task]\nname = \"test_echo\"\n", "echo.toml");
  const std::unique_ptr<Task> echo = make_task(m, {0, &g, &g});
  const std::string e = error_of([&] { capability<EvalReports>(*echo, "checkpoint x.h5"); });
  EXPECT_NE(e.find("checkpoint x.h5 holds a 'test_echo' task, which cannot write evaluation reports"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("tasks that can: "), std::string::npos) << e;
}

TEST(TaskRegistry, BadRegistrationsAndNamesAreRefused) {
  EXPECT_THROW(register_task<EchoTask>("test_echo", "a second task of the same name"), std::logic_error);
  EXPECT_THROW(register_task(TaskInfo{"", "no name", {}, nullptr}), std::logic_error);
  Config c = Config::parse("[task]\nname = \"no_such_task\"\n", "bad.toml");
  Generator g(0);
  const std::string e = error_of([&] { make_task(c, {0, &g, &g}); });
  EXPECT_NE(e.find("bad.toml"), std::string::npos) << e;
  EXPECT_NE(e.find("task.name"), std::string::npos) << e;
  EXPECT_NE(e.find("test_echo"), std::string::npos) << "the error lists the registered names: " << e;
}

}  // namespace
}  // namespace rune::train
