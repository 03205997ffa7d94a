// Crash safety: SIGKILL at random moments, SIGTERM clean stops, a full disk during a checkpoint write,
// resident memory across epochs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
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

// Starts the CLI with `args` (split on spaces), output to `log`; returns the child's pid. With
// `max_file_bytes`, every write that would grow a file beyond it fails with EFBIG, as on a full disk
// (RLIMIT_FSIZE works without root; SIGXFSZ is ignored so that write() fails instead of the signal killing).
pid_t spawn(const std::string& args, const std::string& log, rlim_t max_file_bytes = RLIM_INFINITY) {
  std::vector<std::string> parts;
  std::istringstream ss(args);
  for (std::string w; ss >> w;) parts.push_back(w);
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = freopen(log.c_str(), "a", stderr);
    (void)f;
    if (max_file_bytes != RLIM_INFINITY) {
      const rlimit limit{max_file_bytes, max_file_bytes};
      if (setrlimit(RLIMIT_FSIZE, &limit) != 0 || signal(SIGXFSZ, SIG_IGN) == SIG_ERR) _exit(126);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(CONTRASTIVE_CLI));
    for (auto& p : parts) argv.push_back(p.data());
    argv.push_back(nullptr);
    execv(CONTRASTIVE_CLI, argv.data());
    _exit(127);
  }
  return pid;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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

TEST(Reliability, FullDiskDuringACheckpointWriteKeepsThePreviousCheckpoint) {
  if (!test_util::fashion_mnist_present()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto dir = test_util::temp_dir("full");
  const std::string run = dir + "/r", ckpt = run + "/last.ckpt";
  auto first =
      test_util::run_cli("train --method ce --epochs 1 --seed 3 " + test_util::quick_flags() + " --out " + run);
  ASSERT_EQ(first.status, 0) << first.output;
  const std::string before = slurp(ckpt);
  ASSERT_GT(before.size(), 4096u);
  // Room for the log, metrics and plots of the next epoch, not for its checkpoint.
  const pid_t pid = spawn("train --resume " + run + " --epochs 2 --threads 2", dir + "/full.log", before.size() / 2);
  EXPECT_EQ(wait_exit(pid), 1);  // a RunError: neither a crash (>= 128) nor SIGXFSZ (153)
  const std::string log = slurp(dir + "/full.log");
  // One line says what failed, why, and that the previous checkpoint is still there.
  std::istringstream lines(log);
  int error_lines = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("error") == std::string::npos) continue;
    ++error_lines;
    EXPECT_NE(line.find("checkpoint " + ckpt + " could not be written"), std::string::npos) << line;
    EXPECT_NE(line.find("File too large"), std::string::npos) << line;
    EXPECT_NE(line.find("the previous checkpoint is kept"), std::string::npos) << line;
  }
  EXPECT_EQ(error_lines, 1) << log;
  EXPECT_EQ(slurp(ckpt), before) << "last.ckpt changed";
  EXPECT_FALSE(std::filesystem::exists(ckpt + ".tmp"));
  EXPECT_NO_THROW(load_model(ckpt, nullptr, "cpu"));
  // Once there is room again, the run resumes from the kept checkpoint.
  auto resumed = test_util::run_cli("train --resume " + run + " --epochs 2 --threads 2");
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
