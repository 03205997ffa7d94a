// `contrastive launch -n N -- train ...`: starts N local processes of this binary with torchrun's environment
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), forwards SIGINT/SIGTERM/SIGUSR1 to
// them and returns the first failing exit code (0 when all succeed). A rank that fails makes the others fail too
// (the process group reports the lost peer); any still running `--grace` seconds later are terminated.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <thread>

#include "commands.h"
#include "contrastive/common.h"

namespace contrastive::cli {
namespace {

struct LaunchArgs {
  int64_t procs = 2;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;
  double grace = 60;
  std::vector<std::string> command;
};

std::atomic<int> g_signal{0};
extern "C" void on_launch_signal(int sig) { g_signal.store(sig); }

// A TCP port that is free now on the loopback interface (the kernel's choice for port 0).
int64_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw RunError(std::string("launch: cannot open a socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw RunError(std::string("launch: cannot find a free port: ") + std::strerror(errno));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int run_launch(const LaunchArgs& a) {
  if (a.procs < 1) throw InputError("invalid value for -n: " + std::to_string(a.procs) + " (must be >= 1)");
  if (a.command.empty()) throw InputError("launch: nothing to run; usage: contrastive launch -n N -- train ...");
  if (a.command.front() == "launch") throw InputError("launch: the command to run cannot be `launch` itself");
  if (a.master_port < 0 || a.master_port > 65535)
    throw InputError("invalid value for --master-port: " + std::to_string(a.master_port));
  const int64_t port = a.master_port > 0 ? a.master_port : free_port();
  char exe[4096];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (len <= 0) throw RunError("launch: cannot find this program's path (/proc/self/exe)");
  exe[len] = '\0';

  std::vector<std::string> argv_s{exe};
  argv_s.insert(argv_s.end(), a.command.begin(), a.command.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);

  std::signal(SIGINT, on_launch_signal);
  std::signal(SIGTERM, on_launch_signal);
  std::signal(SIGUSR1, on_launch_signal);
  std::cerr << "launch: " << a.procs << " processes, rendezvous " << a.master_addr << ":" << port << std::endl;
  std::vector<pid_t> pids(static_cast<size_t>(a.procs), -1);
  for (int64_t r = 0; r < a.procs; ++r) {
    const pid_t pid = fork();
    if (pid < 0) {
      for (pid_t p : pids)
        if (p > 0) kill(p, SIGTERM);
      throw RunError(std::string("launch: fork failed: ") + std::strerror(errno));
    }
    if (pid == 0) {
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      std::signal(SIGUSR1, SIG_DFL);
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(a.procs).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(a.procs).c_str(), 1);
      setenv("MASTER_ADDR", a.master_addr.c_str(), 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("CONTRASTIVE_LAUNCHER", "contrastive launch", 1);
      // The workers share this machine's cores: OpenMP threads that sleep at once when idle, instead of
      // spinning, keep one worker's waits off another's cores (docs/architecture.md, "Threads"). The
      // environment wins.
      setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
      execv(exe, argv.data());
      std::cerr << "launch: cannot start " << exe << ": " << std::strerror(errno) << std::endl;
      _exit(127);
    }
    pids[static_cast<size_t>(r)] = pid;
  }

  int result = 0;
  int64_t running = a.procs;
  bool terminated = false, killed = false;
  std::chrono::steady_clock::time_point failed_at;
  while (running > 0) {
    if (const int sig = g_signal.exchange(0); sig != 0) {
      for (pid_t p : pids)
        if (p > 0) kill(p, sig);
    }
    int status = 0;
    const pid_t done = waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (size_t r = 0; r < pids.size(); ++r) {
        if (pids[r] != done) continue;
        pids[r] = -1;
        --running;
        const int code = exit_code(status);
        if (code != 0 && result == 0) {
          result = code;
          failed_at = std::chrono::steady_clock::now();
          // 130 (SIGINT, --stop-after-steps) and 75 (SIGTERM/SIGUSR1, requeue): a clean stop on every rank
          if (running > 0 && code != 130 && code != 75)
            std::cerr << "launch: rank " << r << " exited with code " << code << "; waiting up to " << a.grace
                      << " s for the other ranks" << std::endl;
        }
      }
      continue;
    }
    if (done < 0 && errno != EINTR) break;
    if (result != 0) {  // a rank failed: the others should follow on their own; make sure they do
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - failed_at).count();
      if (!terminated && waited > a.grace) {
        std::cerr << "launch: terminating the remaining ranks" << std::endl;
        for (pid_t p : pids)
          if (p > 0) kill(p, SIGTERM);
        terminated = true;
      } else if (!killed && waited > a.grace + 10) {
        for (pid_t p : pids)
          if (p > 0) kill(p, SIGKILL);
        killed = true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return result;
}

CommandRegistration reg([](CLI::App& app) -> std::function<int()> {
  auto args = std::make_shared<LaunchArgs>();
  auto* cmd = app.add_subcommand("launch", "run a command in N local processes (data parallel), like torchrun");
  cmd->add_option("-n,--nproc", args->procs, "number of processes")->capture_default_str();
  cmd->add_option("--master-addr", args->master_addr, "rendezvous address")->capture_default_str();
  cmd->add_option("--master-port", args->master_port, "rendezvous port (0: a free one)")->capture_default_str();
  cmd->add_option("--grace", args->grace, "seconds the other ranks get to exit after one fails")
      ->capture_default_str();
  cmd->add_option("command", args->command,
                  "the contrastive command to run, after --, e.g. -- train --method simclr")
      ->required();
  return [args]() { return run_launch(*args); };
});

}  // namespace
}  // namespace contrastive::cli
