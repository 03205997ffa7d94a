// Training from a Config: run_training builds a Trainer (trainer.h) with its RunDirectory and callbacks and
// fits it; the pieces it is made of (schedule, optimizer, speed options, signals, data) are here too. It knows
// nothing method-specific (docs/architecture.md).
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>
#include <string>

#include "contrastive/config.h"
#include "contrastive/methods.h"
#include "contrastive/resolve.h"
#include "contrastive/trainer.h"

namespace contrastive {

// Exit status of `contrastive train` stopped by SIGTERM or SIGUSR1 with a checkpoint written: EX_TEMPFAIL of
// sysexits.h ("try again later"), so that a job script can requeue on it; SIGINT and --stop-after-steps give 130.
constexpr int kRequeueExitCode = 75;

// Trains from scratch (resume_dir empty) or continues the run in resume_dir from its last.ckpt. Without
// resume_dir, an --out that holds a checkpoint of the same configuration is continued from its newest
// readable checkpoint (automatic resume, unless train.no_auto_resume); another configuration -> InputError
// naming the first differing key; a finished one returns already_complete.
TrainResult run_training(Config config, const std::string& resume_dir = "");

// Learning rate at a (fractional) point of training: warm-up, then cosine / step / constant (docs/methods.md §3).
double scheduled_lr(const OptimConfig& optim, int64_t epochs, double epoch_progress);

// The optimizer of the config over the method's parameters (frozen ones excluded; --fix-pred-lr parameters in
// their own group, which the schedule leaves at the base rate).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Config& config, MethodImpl& method);

// Applies LARS's layer-wise trust ratio to the gradients of a parameter group in place (BN and bias, i.e. 1-D
// parameters, are excluded from adaptation and weight decay); used before a plain SGD step.
void lars_adapt_gradients(MethodImpl& method, double weight_decay, double trust);

class Dataset;
class ViewGenerator;

// The MethodSpec of a config over its training data (shared by train, bench and load_model).
MethodSpec method_spec(const Config& config, const Dataset& train);

// The config's augmentation for images shaped like `train`, normalised with the dataset's constants.
std::shared_ptr<ViewGenerator> make_config_view_generator(const Config& config, const Dataset& train);

// Everything after backward in a training step: LARS adaptation when configured, the optimizer step, then
// the method's after_step (momentum encoders, queues).
void finish_step(const Config& config, MethodImpl& method, torch::optim::Optimizer& optimizer,
                 const StepContext& ctx);

// RAII: bfloat16 autocast on the CPU for the calling thread while alive (a no-op when `on` is false). Autocast
// state is thread-local, so the loader's augmentation thread is not affected.
class CpuBf16Autocast {
 public:
  explicit CpuBf16Autocast(bool on);
  ~CpuBf16Autocast();
  CpuBf16Autocast(const CpuBf16Autocast&) = delete;
  CpuBf16Autocast& operator=(const CpuBf16Autocast&) = delete;

 private:
  bool on_;
};

// Channels-last: every 4-D parameter of `module` becomes NHWC in place (call before making the optimizer),
// and 4-D views are returned NHWC.
void module_to_channels_last(torch::nn::Module& module);
std::vector<torch::Tensor> views_to_channels_last(std::vector<torch::Tensor> views);

// Cooperative stop (SIGINT, SIGTERM, SIGUSR1): the trainer finishes the step, checkpoints and returns;
// SIGTERM and SIGUSR1 also ask for a requeue (TrainResult::requeue).
void request_stop();
bool stop_requested();
bool requeue_requested();
void install_stop_handlers();

// Resolves --device auto|cpu|cuda. "cuda" without a usable CUDA device (a CPU-only LibTorch, or a CUDA build on
// a machine without a GPU) is an InputError saying which.
torch::Device resolve_device(const std::string& device);
// What resolve_speed_defaults needs to know about this machine and `device` (host_cpu() of platform.h).
SpeedContext speed_context(const torch::Device& device);

}  // namespace contrastive

#include "contrastive/data.h"
#include "contrastive/eval.h"
#include "contrastive/loaded_model.h"

namespace contrastive {

// Loads the train/test splits a config names (with --train-subset / --test-subset applied).
DataSplits load_data(const Config& config);
// The input normalisation of a config's dataset: --mean/--std when given (InputError when their count is not
// `channels`), else the dataset's standard values.
Normalization data_normalization(const Config& config, int64_t channels);
// Per-channel mean and std of up to `sample` training images, evenly spaced (a folder's default
// normalisation), on the [0,1] scale.
Normalization measure_normalization(const Dataset& train, int64_t sample = 2000);
// The front door's data checks of a fresh run, once the data is loaded: a method that reads labels is refused
// on unlabelled data, and a folder without --mean/--std gets measured statistics written into the config.
void settle_data_config(Config& config, const DataSplits& data);
// What settle_data_config wrote into a stored folder run (normalisation, channels), copied into `asked` where
// the command left it at its default: a command that continues the run asks for the same run.
void adopt_settled_data(const Config& stored, Config& asked);
// A folder at `dir` read with the input contract of a trained model (image size, channels, normalisation),
// every image in it (no validation split held out).
DataConfig folder_data_like(const Config& trained, const std::string& dir, const std::string& layout = "auto");

// ContrastiveCrop boxes (docs/methods.md §6) of the first `count` images of `data` (all when count <= 0):
// the method's last-stage feature map in eval mode on the test transform, localised with `threshold`.
// Returns float [n,4] (h0,w0,h1,w1) on the CPU; restores the method's train/eval mode.
torch::Tensor compute_boxes(MethodImpl& method, const Dataset& data, const Normalization& norm,
                            torch::Device device, double threshold, int64_t count = 0);

// Reads a checkpoint, rebuilds its method from the stored config and loads the weights (LoadedModel:
// loaded_model.h). `data_override` replaces the dataset section when its dataset is non-empty (evaluate on other
// data of the same shape).
LoadedModel load_model(const std::string& checkpoint, const DataConfig* data_override = nullptr,
                       const std::string& device = "auto");

}  // namespace contrastive
