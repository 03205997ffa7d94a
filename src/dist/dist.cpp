// c10d process group, collectives and the autograd-aware gathers of dist.h.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // Debian's libtorch and pip torch are both built with Gloo
#endif
#include "contrastive/dist.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "contrastive/common.h"

namespace contrastive {

// LibTorch 1.x: the concrete process groups derive from c10d::ProcessGroup. LibTorch 2.x split that into a
// ProcessGroup front and per-device c10d::Backend implementations (ProcessGroupGloo/NCCL are Backends); we
// only ever call the collectives of one backend, which both versions expose with the same signatures.
#if TORCH_VERSION_MAJOR >= 2
using CollectiveGroup = c10d::Backend;
#else
using CollectiveGroup = c10d::ProcessGroup;
#endif

namespace {

struct State {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CollectiveGroup> group;
  int64_t rank = 0, world = 1;
  std::string backend = "none";
  double bucket_mb = 25;
  int64_t string_counter = 0;
};

State& state() {
  static State s;
  return s;
}

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// Waits for a collective; a failure (peer gone, time-out) becomes a one-line RunError.
void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw RunError(std::string("distributed ") + what + " failed on rank " + std::to_string(state().rank) +
                   " of " + std::to_string(state().world) + ": " + first_line(e.what()) +
                   " (another rank has probably stopped; see its log)");
  }
}

int64_t env_int(const char* name, int64_t fallback, bool* present = nullptr) {
  const char* v = std::getenv(name);
  if (present) *present = v != nullptr && *v != '\0';
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0')
    throw InputError(std::string("environment variable ") + name + "='" + v + "' is not an integer");
  return x;
}

std::string env_str(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v == nullptr || *v == '\0' ? fallback : std::string(v);
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

DistEnv read_dist_env() {
  DistEnv env;
  bool has_rank = false, has_world = false;
  env.rank = env_int("RANK", 0, &has_rank);
  env.world_size = env_int("WORLD_SIZE", 1, &has_world);
  if (has_rank || has_world) {
    if (!(has_rank && has_world))
      throw InputError("RANK and WORLD_SIZE must be set together (torchrun sets both)");
    env.local_rank = env_int("LOCAL_RANK", env.rank);
    env.source = env_str("CONTRASTIVE_LAUNCHER", "torchrun");  // `contrastive launch` names itself
  } else if (std::getenv("SLURM_PROCID") != nullptr && std::getenv("SLURM_NTASKS") != nullptr) {
    env.rank = env_int("SLURM_PROCID", 0);
    env.world_size = env_int("SLURM_NTASKS", 1);
    env.local_rank = env_int("SLURM_LOCALID", 0);
    env.source = "slurm";
    env.master_addr = env_str("SLURM_LAUNCH_NODE_IPADDR", env.master_addr);
  }
  env.master_addr = env_str("MASTER_ADDR", env.master_addr);
  env.master_port = env_int("MASTER_PORT", env.master_port);
  if (env.world_size < 1) throw InputError("WORLD_SIZE=" + std::to_string(env.world_size) + " must be >= 1");
  if (env.rank < 0 || env.rank >= env.world_size)
    throw InputError("RANK=" + std::to_string(env.rank) +
                     " is outside [0, WORLD_SIZE=" + std::to_string(env.world_size) + ")");
  if (env.local_rank < 0) throw InputError("LOCAL_RANK=" + std::to_string(env.local_rank) + " must be >= 0");
  if (env.master_port < 1 || env.master_port > 65535)
    throw InputError("MASTER_PORT=" + std::to_string(env.master_port) + " is not a TCP port");
  return env;
}

namespace dist {

void init(const DistEnv& env, const DistOptions& options, torch::Device device) {
  auto& s = state();
  shutdown();
  s.bucket_mb = options.bucket_mb;
  if (env.world_size <= 1) return;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  std::string backend = options.backend;
  if (backend == "auto") backend = device.is_cuda() ? "nccl" : "gloo";
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    // Under torchrun the agent already serves the store on MASTER_PORT and says so; otherwise rank 0 serves it.
    so.isServer = env.rank == 0 && env_str("TORCHELASTIC_USE_AGENT_STORE", "") != "True";
    so.numWorkers = static_cast<std::size_t>(env.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    // torchrun keeps its store across restarts of the workers (--max_restarts): each attempt gets its own key
    // space, as torch's own env:// rendezvous does, so that no key of a dead attempt is read.
    const std::string attempt = env_str("TORCHELASTIC_RESTART_COUNT", "");
    s.store = c10::make_intrusive<c10d::PrefixStore>(
        attempt.empty() ? std::string("contrastive") : "contrastive/attempt_" + attempt, tcp);
  } catch (const std::exception& e) {
    throw RunError("distributed: rank " + std::to_string(env.rank) + " could not join the rendezvous at " +
                   env.master_addr + ":" + std::to_string(env.master_port) + " (time-out " +
                   std::to_string(static_cast<int64_t>(options.timeout_s)) + " s): " + first_line(e.what()));
  }
  try {
    if (backend == "nccl") {
#ifdef USE_C10D_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      s.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(s.store, env.rank, env.world_size, o);
#else
      throw InputError("--dist-backend nccl: this build of LibTorch has no NCCL (use gloo)");
#endif
    } else if (backend == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname != nullptr && *ifname != '\0') {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (is_loopback(env.master_addr)) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      s.group = c10::make_intrusive<c10d::ProcessGroupGloo>(s.store, env.rank, env.world_size, o);
    } else {
      throw InputError("--dist-backend '" + backend + "': expected auto, gloo or nccl");
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    s.store.reset();
    throw RunError("distributed: rank " + std::to_string(env.rank) + " could not create the " + backend +
                   " process group: " + first_line(e.what()));
  }
  s.rank = env.rank;
  s.world = env.world_size;
  s.backend = backend;
}

void shutdown() {
  auto& s = state();
  s.group.reset();
  s.store.reset();
  s.rank = 0;
  s.world = 1;
  s.backend = "none";
  s.string_counter = 0;
}

bool active() { return state().group && state().world > 1; }
int64_t rank() { return state().rank; }
int64_t world_size() { return state().world; }
std::string backend_name() { return state().backend; }

void broadcast_module(torch::nn::Module& module) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p);
  for (auto& b : module.buffers()) tensors.push_back(b);
  for (auto& t : tensors) {
    // One broadcast per tensor keeps it simple; this runs once per run, not per step.
    std::vector<torch::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    wait(state().group->broadcast(one), "broadcast of the initial weights");
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void all_reduce_gradients(const std::vector<torch::Tensor>& params) {
  if (!active()) return;
  torch::NoGradGuard no_grad;
  const double world = static_cast<double>(state().world);
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(state().bucket_mb * 1024 * 1024));
  std::vector<torch::Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat_views;
    for (auto& g : bucket) flat_views.push_back(g.reshape({-1}));
    std::vector<torch::Tensor> flat{torch::cat(flat_views)};
    wait(state().group->allreduce(flat), "gradient all-reduce");
    flat[0].div_(world);
    int64_t offset = 0;
    for (auto& g : bucket) {
      g.copy_(flat[0].narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& p : params) {
    auto g = p.grad();
    if (!g.defined()) continue;
    if (!bucket.empty() &&
        (g.scalar_type() != bucket.front().scalar_type() || g.device() != bucket.front().device() ||
         bytes + static_cast<int64_t>(g.nbytes()) > cap))
      flush();
    bucket.push_back(g);
    bytes += static_cast<int64_t>(g.nbytes());
  }
  flush();
}

// Gloo has no bfloat16/half collectives in LibTorch 1.13 ("Invalid scalar type"): such tensors (embeddings under
// --precision bf16) cross the wire as float32 -- exact, since every bf16/half value is a float32 -- and come back
// in their own type.
static bool needs_float_on_wire(const torch::Tensor& x) {
  return x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf;
}

torch::Tensor all_reduce_sum(const torch::Tensor& x) {
  if (!active()) return x.clone();
  const bool widen = needs_float_on_wire(x);
  std::vector<torch::Tensor> t{widen ? x.detach().to(torch::kFloat).contiguous()
                                     : x.detach().contiguous().clone()};
  wait(state().group->allreduce(t), "all-reduce");
  return widen ? t[0].to(x.scalar_type()) : t[0];
}

torch::Tensor all_gather(const torch::Tensor& x) {
  if (!active()) return x.detach();
  const bool widen = needs_float_on_wire(x);
  std::vector<torch::Tensor> in{widen ? x.detach().to(torch::kFloat).contiguous() : x.detach().contiguous()};
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int64_t r = 0; r < state().world; ++r) out[0].push_back(torch::empty_like(in[0]));
  wait(state().group->allgather(out, in), "all-gather");
  auto all = torch::cat(out[0]);
  return widen ? all.to(x.scalar_type()) : all;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct GatherWithGrad : public torch::autograd::Function<GatherWithGrad> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x) {
    ctx->saved_data["rows"] = x.size(0);
    return all_gather(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const int64_t rows = ctx->saved_data["rows"].toInt();
    auto total = all_reduce_sum(grad[0]);
    return {total.narrow(0, state().rank * rows, rows)};
  }
};

struct ReduceWithGrad : public torch::autograd::Function<ReduceWithGrad> {
  static torch::Tensor forward(AutogradContext*, const torch::Tensor& x) { return all_reduce_sum(x); }
  static variable_list backward(AutogradContext*, variable_list grad) { return {all_reduce_sum(grad[0])}; }
};

}  // namespace

torch::Tensor all_gather_with_grad(const torch::Tensor& x) {
  if (!active()) return x;
  return GatherWithGrad::apply(x);
}

torch::Tensor all_reduce_sum_with_grad(const torch::Tensor& x) {
  if (!active()) return x;
  return ReduceWithGrad::apply(x);
}

std::string broadcast_string(const std::string& value) {
  if (!active()) return value;
  auto& s = state();
  const std::string key = "string/" + std::to_string(s.string_counter++);
  try {
    if (s.rank == 0) {
      s.store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
      return value;
    }
    auto bytes = s.store->get(key);
    return std::string(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    throw RunError("distributed: rank " + std::to_string(s.rank) +
                   " could not receive rank 0's setting: " + first_line(e.what()));
  }
}

void barrier() {
  if (!active()) return;
  // An all-reduce of one element acts as the barrier (Gloo's barrier has no time-out of its own in 1.13).
  all_reduce_sum(torch::zeros({1}));
}

torch::Tensor gather_for_loss(const torch::Tensor& x, bool gather) {
  return gather && active() ? all_gather_with_grad(x) : x;
}

torch::Tensor gather_for_loss_nograd(const torch::Tensor& x, bool gather) {
  return gather && active() ? all_gather(x) : x;
}

}  // namespace dist
}  // namespace contrastive
