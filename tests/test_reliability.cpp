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
#include <sstream>
#include <thread>

#include "contrastive/train.h"
#include "contrastive/trainer.h"
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
  std::string f =
      "train --method " + method + " --epochs 3 --seed 11 " + test_util::quick_flags() + " --knn-every 0";
  if (method == "moco") f += " --queue-size 128";
  return f;
}

}  // namespace

TEST(Reliability, SigkillAtRandomMomentsThenResumeGivesTheSameWeights) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("kill");
  std::mt19937 rng(1234);
  int kills = 0;
  for (std::string method : {"ce", "simclr", "moco", "simsiam", "cds"}) {
    const std::string ref = dir + "/" + method + "-ref", run = dir + "/" + method + "-killed";
    ASSERT_EQ(wait_exit(spawn(flags_for(method) + " --out " + ref, dir + "/ref.log")), 0) << method;
    // Kill twice at random moments (possibly during a checkpoint write), resuming after each kill.
    bool started = false;
    for (int k = 0; k < 2; ++k) {
      const std::string cmd = started && std::filesystem::exists(run + "/last.ckpt")
                                  ? "train --resume " + run + " --threads 2"
                                  : flags_for(method) + " --out " + run;
      pid_t pid = spawn(cmd, dir + "/killed.log");
      started = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(1500, 5000)(rng)));
      kill(pid, SIGKILL);
      wait_exit(pid);
      ++kills;
    }
    const std::string finish = std::filesystem::exists(run + "/last.ckpt")
                                   ? "train --resume " + run + " --threads 2"
                                   : flags_for(method) + " --out " + run;
    ASSERT_EQ(wait_exit(spawn(finish, dir + "/killed.log")), 0) << method;
    EXPECT_TRUE(same_weights(ref + "/last.ckpt", run + "/last.ckpt")) << method;
  }
  EXPECT_EQ(kills, 10);
}

// SIGTERM and SIGUSR1 (Slurm's pre-emption warnings) finish the step, write last.ckpt and exit 75, which asks
// the job script for a requeue; the run then continues with --resume or with the same command again.
TEST(Reliability, SigtermAndSigusr1StopCleanlyWithACheckpointAndAskForARequeue) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("term");
  for (const int sig : {SIGTERM, SIGUSR1}) {
    const std::string run = dir + "/r" + std::to_string(sig), log = run + ".log";
    // Enough steps that the signal lands mid-run: 3 epochs, signalled once the first has ended.
    const std::string args = "train --method ce --epochs 3 --seed 2 " + test_util::quick_flags() + " --out " + run;
    pid_t pid = spawn(args, log);
    // Wait for the first checkpoint, then stop.
    for (int i = 0; i < 600 && !std::filesystem::exists(run + "/last.ckpt"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    kill(pid, sig);
    EXPECT_EQ(wait_exit(pid), 75) << sig;
    const std::string text = slurp(log);
    EXPECT_NE(text.find("stopped by signal"), std::string::npos) << text;
    EXPECT_NE(text.find("asks for a requeue"), std::string::npos) << text;
    auto resumed = test_util::run_cli(sig == SIGTERM ? "train --resume " + run + " --threads 2" : args);
    EXPECT_EQ(resumed.status, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
    EXPECT_EQ(test_util::read_metrics(run).size(), 3u);
  }
}

namespace {

// The step checkpoints (step-NNNNNN.ckpt) of a run directory.
std::vector<std::string> step_files(const std::string& run) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(run, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && name.size() > 5 && name.substr(name.size() - 5) == ".ckpt")
      out.push_back(name);
  }
  return out;
}

// The non-empty lines of `text`.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// The step of the first "resumed from ... at epoch E, step S" in `out`; -1 when there is none.
int64_t resumed_step(const std::string& out) {
  const auto at = out.find("resumed from");
  if (at == std::string::npos) return -1;
  const auto step = out.find(", step ", at);
  if (step == std::string::npos) return -1;
  return std::stoll(out.substr(step + 7));
}

}  // namespace

// The acceptance test for one process: --checkpoint-every-steps writes mid-epoch checkpoints; a SIGKILL
// mid-epoch, then the very same command, continues from the newest one (automatic resume) and ends with the
// weights of an uninterrupted run, bit for bit. Re-running a finished run's command is a no-op.
TEST(Reliability, SigkillMidEpochThenTheSameCommandContinuesFromTheStepCheckpoint) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("step-kill");
  // 512 images, batch 32: 16 steps per epoch, 32 in all.
  const std::string base =
      "train --method simclr --epochs 2 --seed 7 --train-subset 512 --test-subset 64 --width 4"
      " --batch-size 32 --threads 2 --knn-every 0";
  const std::string cmd = base + " --checkpoint-every-steps 3 --keep-checkpoints 2 --out " + dir + "/run";
  auto ref = test_util::run_cli(base + " --out " + dir + "/ref");
  ASSERT_EQ(ref.status, 0) << ref.output;

  const pid_t pid = spawn(cmd, dir + "/killed.log");
  const auto t0 = std::chrono::steady_clock::now();
  while (step_files(dir + "/run").empty() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  ASSERT_EQ(wait_exit(pid), 128 + SIGKILL) << "the run ended before the kill: " << slurp(dir + "/killed.log");
  ASSERT_FALSE(step_files(dir + "/run").empty()) << slurp(dir + "/killed.log");
  EXPECT_TRUE(test_util::read_metrics(dir + "/run").empty());  // killed in epoch 1

  // With --no-auto-resume the directory is refused as before.
  auto refused = test_util::run_cli(cmd + " --no-auto-resume");
  EXPECT_EQ(refused.status, 2) << refused.output;
  EXPECT_NE(refused.output.find("already holds a run"), std::string::npos) << refused.output;

  auto again = test_util::run_cli(cmd);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("auto-resume"), std::string::npos) << again.output;
  const int64_t step = resumed_step(again.output);
  EXPECT_GT(step, 0) << again.output;  // mid-epoch: from an interval checkpoint, not an epoch end
  EXPECT_EQ(step % 3, 0) << again.output;
  EXPECT_EQ(test_util::read_metrics(dir + "/run").size(), 2u);
  const auto kept = step_files(dir + "/run");
  EXPECT_GE(kept.size(), 1u);
  EXPECT_LE(kept.size(), 2u);  // --keep-checkpoints 2
  EXPECT_TRUE(same_weights(dir + "/ref/last.ckpt", dir + "/run/last.ckpt"));

  // A finished run (a requeued job that had completed): reported, nothing rewritten, exit 0.
  const std::string final_ckpt = slurp(dir + "/run/last.ckpt");
  auto done = test_util::run_cli(cmd);
  EXPECT_EQ(done.status, 0) << done.output;
  EXPECT_NE(done.output.find("is complete"), std::string::npos) << done.output;
  EXPECT_EQ(slurp(dir + "/run/last.ckpt"), final_ckpt);
  EXPECT_EQ(test_util::read_metrics(dir + "/run").size(), 2u);
  std::filesystem::remove_all(dir);
}

// A training into a run directory that another one holds stops with one line naming the holder, and writes
// nothing there.
TEST(Reliability, ASecondTrainingIntoARunDirectoryInUseIsRefusedAndWritesNothing) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("busy");
  const std::string run = dir + "/run";
  RunDirectory holder(run);  // stands for a training that is using the directory
  ASSERT_EQ(holder.try_lock(), "");
  auto busy = test_util::run_cli("train --method ce --epochs 1 " + test_util::quick_flags() + " --out " + run);
  EXPECT_EQ(busy.status, 2) << busy.output;
  const auto lines = lines_of(busy.output);
  ASSERT_EQ(lines.size(), 1u) << busy.output;
  EXPECT_NE(lines[0].find("run directory " + run + " is in use by another training (pid " +
                          std::to_string(::getpid()) + ")"),
            std::string::npos)
      << lines[0];
  EXPECT_FALSE(std::filesystem::exists(run + "/metrics.jsonl"));
  EXPECT_FALSE(std::filesystem::exists(run + "/config.yaml"));
  EXPECT_FALSE(std::filesystem::exists(run + "/last.ckpt"));
  std::filesystem::remove_all(dir);
}

// A run directory holding a run of another configuration is refused with one line naming the first differing
// key, and left as it was; the right command then continues it to the uninterrupted run's weights.
TEST(Reliability, AnotherConfigurationInTheRunDirectoryIsRefusedNamingTheKey) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("mismatch");
  const std::string rest = " --epochs 2 --seed 9 " + test_util::quick_flags();
  const std::string base = "train --method ce" + rest;
  const std::string run = dir + "/run";
  auto ref = test_util::run_cli(base + " --out " + dir + "/ref");
  ASSERT_EQ(ref.status, 0) << ref.output;
  auto part = test_util::run_cli(base + " --stop-after-steps 6 --out " + run);  // 4 steps per epoch: mid-epoch 2
  ASSERT_EQ(part.status, 130) << part.output;
  const std::string before = slurp(run + "/last.ckpt");

  for (const auto& [command, key] : std::vector<std::pair<std::string, std::string>>{
           {base + " --lr 0.02", "--lr (0.05 in " + run + "/last.ckpt, 0.02 in this command)"},
           {base + " --weight-decay 0.001",
            "--weight-decay (0.0005 in " + run + "/last.ckpt, 0.001 in this command)"},
           {"train --method simclr" + rest,
            "--method ('ce' in " + run + "/last.ckpt, 'simclr' in this command)"}}) {
    auto bad = test_util::run_cli(command + " --out " + run);
    EXPECT_EQ(bad.status, 2) << command << "\n" << bad.output;
    const auto lines = lines_of(bad.output);
    ASSERT_EQ(lines.size(), 1u) << bad.output;
    EXPECT_NE(lines[0].find("holds a run with another configuration: " + key), std::string::npos) << lines[0];
  }
  EXPECT_EQ(slurp(run + "/last.ckpt"), before);
  EXPECT_EQ(step_files(run).size(), 0u);

  // What may change on a resume (here the checkpoint cadence and logging) is not another configuration.
  auto ok = test_util::run_cli(base + " --checkpoint-every-steps 1 --log-every 1 --out " + run);
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_EQ(resumed_step(ok.output), 2) << ok.output;
  EXPECT_TRUE(same_weights(dir + "/ref/last.ckpt", run + "/last.ckpt"));
  std::filesystem::remove_all(dir);
}

TEST(Reliability, FullDiskDuringACheckpointWriteKeepsThePreviousCheckpoint) {
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("full");
  const std::string run = dir + "/r", ckpt = run + "/last.ckpt";
  auto first =
      test_util::run_cli("train --method ce --epochs 1 --seed 3 " + test_util::quick_flags() + " --out " + run);
  ASSERT_EQ(first.status, 0) << first.output;
  const std::string before = slurp(ckpt);
  ASSERT_GT(before.size(), 4096u);
  // Room for the log, metrics and plots of the next epoch, not for its checkpoint.
  const pid_t pid =
      spawn("train --resume " + run + " --epochs 2 --threads 2", dir + "/full.log", before.size() / 2);
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
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("rss");
  auto r =
      test_util::run_cli("train --method cds --epochs 6 " + test_util::quick_flags() + " --out " + dir + "/r");
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(dir + "/r/metrics.jsonl");
  std::vector<double> rss;
  for (std::string line; std::getline(in, line);)
    rss.push_back(nlohmann::json::parse(line)["rss_mb"].get<double>());
  ASSERT_EQ(rss.size(), 6u);
  // After the first epochs (allocator warm-up), resident memory must not keep growing.
  EXPECT_LT(rss[5], rss[2] * 1.05 + 16) << rss[2] << " MB -> " << rss[5] << " MB";
}

TEST(Reliability, WeightsDoNotDependOnTheThreadEnvironment) {
  // OpenBLAS (Debian's LibTorch) sized its pool from OMP_NUM_THREADS at load time, so the same command with
  // --threads 1 ended at other weights under OMP_NUM_THREADS=1 than under 2 (docs/architecture.md, "Threads").
  REQUIRE_FASHION_MNIST();
  const auto dir = test_util::temp_dir("threads-env");
  const std::string flags =
      "train --method simclr --dataset fashion-mnist --train-subset 256 --test-subset 64"
      " --width 8 --epochs 1 --knn-every 0 --threads 1 --seed 3 --batch-size 32 --out ";
  auto one = test_util::run_cli_env("OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1", flags + dir + "/one");
  ASSERT_EQ(one.status, 0) << one.output;
  auto two = test_util::run_cli_env("OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2", flags + dir + "/two");
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_TRUE(same_weights(dir + "/one/last.ckpt", dir + "/two/last.ckpt"));
}
