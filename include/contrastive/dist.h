// Data-parallel training on torch's own c10d engine (Gloo on CPU; NCCL in CUDA builds that have it).
//
// One process per rank. The launch contract is torchrun's: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
// MASTER_PORT, with Slurm's SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID as a fallback; `contrastive launch`
// sets them for local processes. Every collective here is a c10d collective on the process group created by
// init(); nothing is home-made. With one process (no environment) every function is a cheap no-op.
//
// The process group is process-wide state: the trainer creates it, methods and layers ask for it through the
// free functions below (gathering negatives, shuffle-BN, synchronised BatchNorm), like torch.distributed.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace contrastive {

// Where this process sits in a job, as read from the environment.
struct DistEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::string source;  // "torchrun" (RANK/WORLD_SIZE), "contrastive launch", "slurm", or "" (one process)
};

// Reads the launch variables. Malformed or inconsistent values -> InputError naming the variable.
// Slurm: MASTER_ADDR defaults to SLURM_LAUNCH_NODE_IPADDR when set; MASTER_PORT to 29500.
DistEnv read_dist_env();

struct DistOptions {
  std::string backend = "auto";  // auto | gloo | nccl (auto: nccl for CUDA devices when built in, else gloo)
  double timeout_s = 300;        // store rendezvous and every collective; a dead peer ends the run by then
  double bucket_mb = 25;         // gradient all-reduce bucket size
};

namespace dist {

// Joins the job described by `env` (rendezvous through a TCPStore on MASTER_ADDR:MASTER_PORT, rank 0 hosts
// it). Does nothing when env.world_size == 1. Connection failures and time-outs -> RunError.
void init(const DistEnv& env, const DistOptions& options, torch::Device device = torch::kCPU);
// Leaves the job (destroys the process group). Safe to call when not initialised.
void shutdown();

// True when init() created a process group with more than one rank.
bool active();
int64_t rank();
int64_t world_size();
std::string backend_name();  // "gloo", "nccl", or "none"

// Gathering negatives and synchronising BatchNorm are options of the objects that do them, not process-wide
// flags: a method reads MethodSpec::config.dist.no_gather and passes `gather` below, and
// convert_sync_batchnorm (models.h) switches a module's BatchNorm layers.

// ---- collectives (all ranks must call them in the same order; a lost peer -> RunError) ----
// Copies rank 0's parameters and buffers into every rank's module (start of training, after resume).
void broadcast_module(torch::nn::Module& module);
// Averages the defined gradients of `params` over ranks, flattened into buckets of at most bucket_mb each:
// one all-reduce per bucket, not one per tensor.
void all_reduce_gradients(const std::vector<torch::Tensor>& params);
// Sum over ranks (no autograd). Returns a new tensor; `x` is not modified.
torch::Tensor all_reduce_sum(const torch::Tensor& x);
// The tensors of all ranks concatenated along dim 0 in rank order (no autograd). Every rank must pass the
// same shape.
torch::Tensor all_gather(const torch::Tensor& x);
// all_gather with gradient: the backward sums the incoming gradient over ranks and returns this rank's slice,
// so that averaging parameter gradients over ranks gives the gradient of a loss over the global batch.
torch::Tensor all_gather_with_grad(const torch::Tensor& x);
// Sum over ranks with gradient (backward: the gradient summed over ranks), for synchronised BatchNorm.
torch::Tensor all_reduce_sum_with_grad(const torch::Tensor& x);
// Every rank's copy of rank 0's string (e.g. a run directory chosen by rank 0).
std::string broadcast_string(const std::string& s);
void barrier();

// Loss-side helper for methods: all_gather_with_grad when `gather` and active(), else `x` itself. A method
// passes gather = !spec.config.dist.no_gather (--no-gather keeps negatives and statistics per process).
torch::Tensor gather_for_loss(const torch::Tensor& x, bool gather);
// No-grad variant for labels and indices that go with gather_for_loss.
torch::Tensor gather_for_loss_nograd(const torch::Tensor& x, bool gather);

}  // namespace dist
}  // namespace contrastive
