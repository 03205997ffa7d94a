// Helpers shared by the test files.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

namespace test_util {

// A fresh empty directory under the system temp dir.
inline std::string temp_dir(const std::string& tag) {
  std::random_device rd;
  auto p = std::filesystem::temp_directory_path() / ("contrastive-" + tag + "-" + std::to_string(rd()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line with its stderr joined to stdout, capturing both and the exit status.
inline Run run_command(const std::string& cmd) {
  Run r;
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(pipe);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

// Runs the CLI with arguments (a shell string), capturing output and exit status; `env` ("NAME=value ...")
// sets environment variables for it.
inline Run run_cli_env(const std::string& env, const std::string& args) {
  // A time limit so that a command that wrongly starts a long run fails the test instead of hanging it.
  return run_command((env.empty() ? "" : "env " + env + " ") + "timeout 600 " + std::string(CONTRASTIVE_CLI) +
                     " " + args);
}

// The torchrun launcher of the Python that matches this build (CMake: CONTRASTIVE_TORCHRUN, and
// CONTRASTIVE_TORCHRUN_DASH for pip torch's dash-spelled flags), launching `nproc` local workers with
// --no-python and its rendezvous on `port`. Debian's torch 1.13 launcher needs --redirects/--tee on Python 3.11
// (1/1 leaves stderr on the console).
inline Run run_cli(const std::string& args) { return run_cli_env("", args); }

// A launcher flag in this launcher's spelling: "max_restarts" -> "--max_restarts" or "--max-restarts".
inline std::string torchrun_flag(std::string name) {
#if CONTRASTIVE_TORCHRUN_DASH
  for (auto& ch : name)
    if (ch == '_') ch = '-';
#endif
  return "--" + name;
}

inline std::string torchrun_command(int nproc, int port, const std::string& extra = "") {
  const std::string n = std::to_string(nproc), p = std::to_string(port);
#if CONTRASTIVE_TORCHRUN_DASH
  return std::string(CONTRASTIVE_TORCHRUN) + " --no-python --nproc-per-node " + n + " --master-port " + p + " " +
         extra;
#else
  return std::string(CONTRASTIVE_TORCHRUN) + " --no_python --nproc_per_node " + n + " --master_port " + p +
         " --redirects 1 --tee 1 " + extra;
#endif
}

inline bool fashion_mnist_present() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

// Under CI=true a test that needs Fashion-MNIST fails when it is missing instead of skipping: CI installs it
// (dataset-fashion-mnist), so a skip there would hide a broken set-up.
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}
#define REQUIRE_FASHION_MNIST()                                                                           \
  do {                                                                                                    \
    if (!test_util::fashion_mnist_present()) {                                                            \
      if (test_util::in_ci()) FAIL() << "Fashion-MNIST is missing under CI=true (dataset-fashion-mnist)"; \
      GTEST_SKIP() << "Fashion-MNIST not installed";                                                      \
    }                                                                                                     \
  } while (0)

// Flags for a quick CPU run on a slice of Fashion-MNIST.
inline std::string quick_flags() {
  return "--train-subset 256 --test-subset 128 --width 4 --batch-size 64 --threads 2 --knn-k 20";
}

}  // namespace test_util
