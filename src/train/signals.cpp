// Cooperative stop: the SIGINT/SIGTERM/SIGUSR1 handlers and the flags the trainer polls (train.h).
#include <atomic>
#include <csignal>

#include "contrastive/train.h"

namespace contrastive {

namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_requeue{false};  // SIGTERM / SIGUSR1: a pre-emption; the job should be requeued
extern "C" void on_stop_signal(int sig) {
  if (sig != SIGINT) g_requeue.store(true);
  g_stop.store(true);
}
}  // namespace

void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }
bool requeue_requested() { return g_requeue.load(); }
void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

}  // namespace contrastive
