// Crash safety: SIGKILL at random moments, SIGTERM clean stops, resident memory across epochs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "contrastive/train.h"
#include "test_runs.h"
#include "test_util.h"

using namespace contrastive;
using test_util::same_weights;

namespace {

// Starts the CLI with `args` (split on spaces), output to `log`; returns the child's pid.
pid_t spawn(const std::string& args, const std::string& log) {
  std::vector<std::string> parts;
  std::istringstream ss(args);
  for (std::string w; ss >> w;) parts.push_back(w);
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = freopen(log.c_str(), "a", stderr);
    (void)f;
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(CONTRASTIVE_CLI));
    for (auto& p : parts) argv.push_back(p.data());
    argv.push_back(nullptr);
    execv(CONTRASTIVE_CLI, argv.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}


std::string flags_for(const std::string& method) {
  std::string f = "train --method " + method + " --epochs 3 --seed 11 " + test_util::quick_flags() + " --knn-every 0";
  if (method == "moco") f += " --queue-size 128";
  return f;
}

}  // namespace

TEST(Reliability, SigkillAtRandomMomentsThenResumeGivesTheSameWeights) {
  if (!test_util::fashion_mnist_present()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto dir = test_util::temp_dir("kill");
  std::mt19937 rng(1234);
  int kills = 0;
  for (std::string method : {"ce", "simclr", "moco", "simsiam", "cds"}) {
    const std::string ref = dir + "/" + method + "-ref", run = dir + "/" + method + "-killed";
    ASSERT_EQ(wait_exit(spawn(flags_for(method) + " --out " + ref, dir + "/ref.log")), 0) << method;
    // Kill twice at random moments (possibly during a checkpoint write), resuming after each kill.
    bool started = false;
    for (int k = 0; k < 2; ++k) {
      const std::string cmd =
          started && std::filesystem::exists(run + "/last.ckpt") ? "train --resume " + run + " --threads 2"
                                                                 : flags_for(method) + " --out " + run;
      pid_t pid = spawn(cmd, dir + "/killed.log");
      started = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(1500, 5000)(rng)));
      kill(pid, SIGKILL);
      wait_exit(pid);
      ++kills;
    }
    const std::string finish = std::filesystem::exists(run + "/last.ckpt") ? "train --resume " + run + " --threads 2"
                                                                           : flags_for(method) + " --out " + run;
    ASSERT_EQ(wait_exit(spawn(finish, dir + "/killed.log")), 0) << method;
    EXPECT_TRUE(same_weights(ref + "/last.ckpt", run + "/last.ckpt")) << method;
  }
  EXPECT_EQ(kills, 10);
}

TEST(Reliability, SigtermStopsCleanlyWithACheckpoint) {
  if (!test_util::fashion_mnist_present()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto dir = test_util::temp_dir("term");
  // Enough steps that the signal lands mid-run: 8 epochs.
  const std::string args = "train --method ce --epochs 8 --seed 2 " + test_util::quick_flags() + " --out " + dir + "/r";
  pid_t pid = spawn(args, dir + "/log");
  // Wait for the first checkpoint, then stop.
  for (int i = 0; i < 600 && !std::filesystem::exists(dir + "/r/last.ckpt"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 130);
  std::ifstream log(dir + "/log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("stopped by signal"), std::string::npos) << text;
  auto resumed = test_util::run_cli("train --resume " + dir + "/r --threads 2");
  EXPECT_EQ(resumed.status, 0) << resumed.output;
}

TEST(Reliability, ResidentMemoryStaysFlatAcrossEpochs) {
  if (!test_util::fashion_mnist_present()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto dir = test_util::temp_dir("rss");
  auto r = test_util::run_cli("train --method cds --epochs 6 " + test_util::quick_flags() + " --out " + dir + "/r");
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(dir + "/r/metrics.jsonl");
  std::vector<double> rss;
  for (std::string line; std::getline(in, line);) rss.push_back(nlohmann::json::parse(line)["rss_mb"].get<double>());
  ASSERT_EQ(rss.size(), 6u);
  // After the first epochs (allocator warm-up), resident memory must not keep growing.
  EXPECT_LT(rss[5], rss[2] * 1.05 + 16) << rss[2] << " MB -> " << rss[5] << " MB";
}
