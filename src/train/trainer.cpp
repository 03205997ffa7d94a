#include "contrastive/trainer.h"

#include <ATen/autocast_mode.h>
#include <fcntl.h>
#include <sys/file.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <optional>
#include <sstream>

#include "contrastive/augment.h"
#include "contrastive/common.h"
#include "contrastive/data.h"
#include "contrastive/dist.h"
#include "contrastive/eval.h"
#include "contrastive/export.h"
#include "contrastive/io.h"
#include "contrastive/platform.h"
#include "contrastive/plot.h"
#include "contrastive/train.h"

namespace fs = std::filesystem;

namespace contrastive {

namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_requeue{false};  // SIGTERM / SIGUSR1: a pre-emption; the job should be requeued
extern "C" void on_stop_signal(int sig) {
  if (sig != SIGINT) g_requeue.store(true);
  g_stop.store(true);
}
}  // namespace

// LibTorch 2.4 replaced the per-device autocast setters with ones taking the device type (the old ones are
// deprecated there); 1.13 has only the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define CONTRASTIVE_AUTOCAST_BY_DEVICE 1
#endif

CpuBf16Autocast::CpuBf16Autocast(bool on) : on_(on) {
  if (!on_) return;
#ifdef CONTRASTIVE_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
#else
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(true);
#endif
}

CpuBf16Autocast::~CpuBf16Autocast() {
  if (!on_) return;
#ifdef CONTRASTIVE_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(at::kCPU, false);
#else
  at::autocast::set_cpu_enabled(false);
#endif
  at::autocast::clear_cache();
}

namespace {
// `t` with real NHWC strides: itself when suggest_memory_format() already says channels-last (unlike
// is_contiguous(ChannelsLast), it does not count size-1 dimensions as matching either layout), else a copy.
torch::Tensor with_nhwc_strides(const torch::Tensor& t) {
  if (t.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) return t;
  return torch::empty_like(t, torch::MemoryFormat::ChannelsLast).copy_(t);
}
}  // namespace

void module_to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  // The same trap as in views_to_channels_last below: a 1x1 kernel [O,I,1,1] or a one-channel stem [O,1,k,k]
  // already counts as channels-last-contiguous, so contiguous(ChannelsLast) kept its NCHW strides; those layers'
  // backward then mixed layouts (BatchNorm and ReLU backward of layer 2 up to 10x slower than in Python).
  for (auto& p : module.parameters()) {
    if (p.dim() != 4) continue;
    auto nhwc = with_nhwc_strides(p);
    if (!nhwc.is_same(p)) p.set_data(nhwc);
  }
}

std::vector<torch::Tensor> views_to_channels_last(std::vector<torch::Tensor> views) {
  // Not v.contiguous(ChannelsLast): with one channel (Fashion-MNIST) an NCHW tensor already counts as
  // channels-last-contiguous, so that returns it unchanged with NCHW strides, suggest_memory_format() then says
  // contiguous, and the stem's output comes out NCHW: every op of the first block then mixed the two layouts
  // (its residual add_ 12x slower, ReLU backward 3x; docs/benchmarks.md). A copy into channels-last strides is
  // what Python's .to(memory_format=torch.channels_last) does.
  for (auto& v : views)
    if (v.dim() == 4) v = with_nhwc_strides(v);
  return views;
}

void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }
bool requeue_requested() { return g_requeue.load(); }
void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

SpeedContext speed_context(const torch::Device& device) {
  SpeedContext c;
  c.native_bf16 = host_cpu().native_bf16();
  c.avx512 = host_cpu().avx512f;
  c.cuda = device.is_cuda();
  c.cpu_model = host_cpu().model;
  return c;
}

torch::Device resolve_device(const std::string& device) {
  if (device == "cpu") return torch::kCPU;
  if (device == "cuda") {
    if (!torch::cuda::is_available()) {
#ifdef CONTRASTIVE_WITH_CUDA
      throw InputError("--device cuda: this build has CUDA (LibTorch " TORCH_VERSION
                       ") but no CUDA device is visible on this machine; use --device cpu");
#else
      throw InputError("--device cuda: this build's LibTorch (" TORCH_VERSION
                       ") is CPU-only; build against a CUDA LibTorch (docs/building.md) or use --device cpu");
#endif
    }
    return torch::kCUDA;
  }
  return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

double scheduled_lr(const OptimConfig& o, int64_t epochs, double e) {
  const double base = o.lr;
  auto after_warmup = [&](double x) {
    if (o.schedule == "constant") return base;
    if (o.schedule == "step") {
      double lr = base;
      for (double m : o.milestones) {
        const bool fractions = !o.milestones.empty() && o.milestones.back() < 1.0;
        const double at = fractions ? m * epochs : m;
        if (std::floor(x) >= at) lr *= o.gamma;
      }
      return lr;
    }
    const double floor_lr = base * o.min_lr_ratio;  // cosine
    return floor_lr + (base - floor_lr) * 0.5 * (1.0 + std::cos(M_PI * x / epochs));
  };
  if (o.warmup_epochs > 0 && e < o.warmup_epochs) {
    const double to = after_warmup(o.warmup_epochs);
    return o.warmup_from + (to - o.warmup_from) * e / o.warmup_epochs;
  }
  return after_warmup(e);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Config& c, MethodImpl& method) {
  const auto& o = c.optim;
  std::vector<torch::Tensor> fixed = method.fixed_lr_parameters();
  auto is_fixed = [&](const torch::Tensor& p) {
    for (const auto& f : fixed)
      if (f.is_same(p)) return true;
    return false;
  };
  std::vector<torch::Tensor> scheduled, fixed_group;
  for (auto& p : method.parameters()) {
    if (!p.requires_grad()) continue;  // frozen (momentum encoders, SimSiam's frozen bias)
    (is_fixed(p) ? fixed_group : scheduled).push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(scheduled);
  if (!fixed_group.empty()) groups.emplace_back(fixed_group);
  if (o.optimizer == "adam") {
    // The betas are the method's default (registry.h) unless --adam-betas gives them.
    TORCH_CHECK(o.adam_betas.size() == 2, "make_optimizer: optim.adam_betas needs 2 values (resolve_defaults)");
    return std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(o.lr)
                                                            .betas({o.adam_betas[0], o.adam_betas[1]})
                                                            .eps(1e-8)
                                                            .weight_decay(o.weight_decay));
  }
  // SGD; for LARS the weight decay is applied inside lars_adapt_gradients, so SGD's own is 0.
  const double wd = o.optimizer == "lars" ? 0.0 : o.weight_decay;
  return std::make_unique<torch::optim::SGD>(
      groups, torch::optim::SGDOptions(o.lr).momentum(o.momentum).nesterov(o.nesterov).weight_decay(wd));
}

void lars_adapt_gradients(MethodImpl& method, double weight_decay, double trust) {
  torch::NoGradGuard no_grad;
  for (auto& p : method.parameters()) {
    if (!p.requires_grad() || !p.grad().defined() || p.dim() <= 1) continue;  // BN and biases: plain SGD
    auto g = p.mutable_grad();
    g.add_(p, weight_decay);
    const double wn = p.norm().item<double>(), gn = g.norm().item<double>();
    if (wn > 0 && gn > 0) g.mul_(trust * wn / gn);
  }
}

MethodSpec method_spec(const Config& config, const Dataset& train) {
  MethodSpec spec;
  spec.config = config;
  spec.in_channels = train.channels();
  spec.image_size = train.height();
  spec.num_classes = train.num_classes();
  spec.train_size = train.size();
  spec.train_labels = train.labels();
  return spec;
}

std::shared_ptr<ViewGenerator> make_config_view_generator(const Config& config, const Dataset& train) {
  AugmentOptions aopt;
  aopt.preset = config.augment.preset;
  aopt.views = config.augment.views;
  aopt.multi_crop = config.augment.multi_crop;
  aopt.crop_scale_min = config.augment.crop_scale_min;
  aopt.crop = config.augment.crop;
  aopt.box_alpha = config.augment.box_alpha;
  const Normalization norm = data_normalization(config, train.channels());
  aopt.mean = norm.mean;
  aopt.std = norm.std;
  return make_view_generator(aopt, train.channels(), train.height(), train.width());
}

void finish_step(const Config& config, MethodImpl& method, torch::optim::Optimizer& optimizer,
                 const StepContext& ctx) {
  if (config.optim.optimizer == "lars")
    lars_adapt_gradients(method, config.optim.weight_decay, config.optim.lars_trust);
  optimizer.step();
  method.after_step(ctx);
}

namespace {

// Collapse warning: effective rank of the batch's normalised output below this. Measured on Fashion-MNIST
// (SimSiam, width 8, batch 128, lr 0.5): 15.6-47 with the stop-gradient, 1.35-1.9 without it once collapsed.
constexpr double kCollapsedRank = 3.0;

// Classifier runs also log the top-1 on clean training images (test transform, eval mode), for overfitting
// curves; at most this many, at evenly spaced positions of the training set (docs/experiments.md).
constexpr int64_t kTrainEvalImages = 10000;

// The fixed images of that evaluation: floor(i * N / n) for i < n = min(N, cap). Evenly spaced rather than the
// first n, so that a training set stored class by class (folders) still gives every class its share.
std::shared_ptr<Dataset> train_eval_subset(const std::shared_ptr<Dataset>& train, int64_t cap) {
  const int64_t size = train->size(), n = std::min(size, cap);
  if (n == size) return train;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i * size / n;
  return take_indices(train, torch::tensor(idx, torch::kLong));
}

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  std::ostringstream ss;
  ss << s / 60 << ":" << std::setw(2) << std::setfill('0') << s % 60;
  return ss.str();
}

// Progress on a terminal (a bar with rate and ETA, redrawn in place) or plain periodic lines otherwise.
class Progress {
 public:
  Progress(int64_t epoch, int64_t epochs, int64_t steps, int64_t log_every, bool quiet = false)
      : epoch_(epoch),
        epochs_(epochs),
        steps_(steps),
        log_every_(log_every),
        tty_(isatty(STDERR_FILENO)),
        quiet_(quiet) {
    start_ = std::chrono::steady_clock::now();
  }
  void update(int64_t step, int64_t images, double loss) {
    images_ += images;
    if (quiet_) return;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = el > 0 ? images_ / el : 0;
    const double eta = step > 0 ? el / (step + 1 - first_) * (steps_ - step - 1) : 0;
    std::ostringstream line;
    line << "epoch " << epoch_ + 1 << "/" << epochs_ << " ";
    if (tty_) {
      const int width = 24;
      const int filled = static_cast<int>(width * (step + 1) / std::max<int64_t>(1, steps_));
      line << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] ";
    }
    line << step + 1 << "/" << steps_ << " loss " << std::fixed << std::setprecision(4) << loss << " "
         << std::setprecision(0) << rate << " img/s ETA " << format_duration(eta);
    if (tty_) {
      std::cerr << "\r" << line.str() << "   " << std::flush;
    } else if ((step + 1) % log_every_ == 0 || step + 1 == steps_) {
      std::cerr << line.str() << "\n";
    }
  }
  void set_first(int64_t first) { first_ = first; }
  void finish() {
    if (tty_ && !quiet_) std::cerr << "\n";
  }

 private:
  int64_t epoch_, epochs_, steps_, log_every_, first_ = 0;
  bool tty_, quiet_;
  double images_ = 0;
  std::chrono::steady_clock::time_point start_;
};

// Rewrites metrics.jsonl keeping only the records of epochs <= `epochs` (a run killed between writing its metrics
// and its checkpoint repeats that epoch on resume; a fresh run starts with none).
void keep_metrics_up_to(const std::string& path, int64_t epochs) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!rec.is_discarded() && rec.contains("epoch") && rec["epoch"].get<int64_t>() <= epochs) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

// Current resident set size in MB (from /proc/self/statm), for the memory-flatness check in metrics.
double resident_memory_mb() {
  std::ifstream statm("/proc/self/statm");
  double pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// Returns false when some gradient is not finite.
bool gradients_finite(MethodImpl& method) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> sums;
  for (const auto& p : method.parameters())
    if (p.grad().defined()) sums.push_back(p.grad().sum());
  if (sums.empty()) return true;
  return torch::stack(sums).isfinite().all().item<bool>();
}

// Due at the epoch's end (epoch is 1-based here): every `every` epochs and at the last.
bool due(int64_t epoch, int64_t every, int64_t epochs) {
  return every > 0 && (epoch % every == 0 || epoch == epochs);
}

// Empty when a checkpoint written by `saved` processes can continue in a run of `world`; else why not. The data
// order and the batch per process depend on the world size, so a resume keeps it (docs/usage.md, "Long jobs").
std::string world_size_mismatch(const std::string& path, int64_t saved, int64_t world) {
  if (saved == world) return "";
  return path + ": written by a run of " + std::to_string(saved) + " process(es), this one has " +
         std::to_string(world) + "; resume it with " + std::to_string(saved) +
         " (the data order and the batch per process depend on it)";
}

// A checkpoint to continue from: the saved config becomes the run's, except the keys a resume may change
// (taken from `config`). A checkpoint of another world size -> InputError.
Checkpoint read_resume_point(const std::string& path, Config& config, int64_t world) {
  Checkpoint ckpt = Checkpoint::read(path);
  Config saved = ckpt.config();
  // The saved run defines the work; only how long, where, with how many threads and how often it
  // checkpoints may change.
  copy_config_keys(config, saved, resume_mutable_keys());
  config = saved;
  const std::string mismatch = world_size_mismatch(path, ckpt.world_size(), world);
  if (!mismatch.empty()) throw InputError(mismatch);
  return ckpt;
}

}  // namespace

torch::Tensor compute_boxes(MethodImpl& method, const Dataset& data, const Normalization& norm,
                            torch::Device device, double threshold, int64_t count) {
  torch::NoGradGuard no_grad;
  const bool was_training = method.is_training();
  method.eval();
  std::vector<torch::Tensor> parts;
  const int64_t n = count > 0 ? std::min(count, data.size()) : data.size();
  for (int64_t s = 0; s < n; s += 512) {
    auto idx = torch::arange(s, std::min(n, s + 512), torch::kLong);
    auto maps = method.feature_map(normalize_images(data.get(idx), norm, device));
    parts.push_back(localize_boxes(maps, data.height(), data.width(), threshold).to(torch::kCPU));
  }
  method.train(was_training);
  return torch::cat(parts);
}

// ---- EpochRecord ----

double EpochRecord::value(const std::string& key, double fallback) const {
  auto it = values.find(key);
  return it == values.end() ? fallback : it->second;
}

nlohmann::json EpochRecord::to_json() const {
  nlohmann::json rec;
  rec["epoch"] = epoch;
  for (const auto& [k, v] : values) rec[k] = v;
  for (const auto& [k, v] : counts) rec[k] = v;
  for (const auto& [k, v] : flags) rec[k] = v;
  for (const auto& [k, v] : terms) rec["terms"][k] = v;
  return rec;
}

// ---- RunDirectory ----

RunDirectory::~RunDirectory() {
  if (log_attached_) detach_log_file();
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock; the file stays (removing it would race a new taker)
}

std::string RunDirectory::try_lock() {
  if (!writer_ || lock_fd_ >= 0) return "";
  std::error_code ec;
  fs::create_directories(path_, ec);
  const std::string lock_path = path_ + "/.lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + lock_path + ": " + std::strerror(errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      ::close(fd);
      return "cannot lock " + lock_path + ": " + std::strerror(err);
    }
    char buf[32] = {0};  // the holder wrote its pid and a newline
    const auto n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    holder.erase(std::remove_if(holder.begin(), holder.end(), [](char c) { return c < '0' || c > '9'; }),
                 holder.end());
    return "run directory " + path_ + " is in use by another training" +
           (holder.empty() ? std::string() : " (pid " + holder + ")") +
           "; wait for it to end, or choose another --out";
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    log_warn("could not write the pid into " + lock_path + " (the lock is held all the same)");
  lock_fd_ = fd;
  return "";
}

std::string RunDirectory::step_checkpoint(int64_t global_step) const {
  std::ostringstream name;
  name << "step-" << std::setw(6) << std::setfill('0') << global_step << ".ckpt";
  return path_ + "/" + name.str();
}

std::vector<std::string> RunDirectory::step_checkpoints() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= 10 || name.rfind("step-", 0) != 0 || name.substr(name.size() - 5) != ".ckpt") continue;
    const std::string digits = name.substr(5, name.size() - 10);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18)
      continue;
    found.emplace_back(std::stoll(digits), entry.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

void RunDirectory::prune_step_checkpoints(int64_t keep) const {
  if (!writer_) return;
  const auto all = step_checkpoints();
  for (size_t i = static_cast<size_t>(keep); i < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i], ec);
    if (ec) log_warn("could not delete the old step checkpoint " + all[i] + ": " + ec.message());
  }
}

void RunDirectory::open(const Config& config, int64_t epochs_kept) {
  if (!writer_) return;
  fs::create_directories(path_);
  keep_metrics_up_to(path_ + "/metrics.jsonl", epochs_kept);  // drop records of epochs the checkpoint lacks
  if (!log_attached_) {
    attach_log_file(path_ + "/train.log");
    log_attached_ = true;
  }
  write_file_atomic(path_ + "/config.yaml", config_to_yaml(config));
}

void RunDirectory::append_metrics(const EpochRecord& record) const {
  if (writer_) append_jsonl(path_ + "/metrics.jsonl", record.to_json());
}

void RunDirectory::write_file(const std::string& name, const std::string& text) const {
  if (writer_) write_file_atomic(path_ + "/" + name, text);
}

std::string RunDirectory::resume_decision(const Config& config, int64_t world,
                                          std::vector<std::string>& notes) const {
  std::vector<std::string> candidates;
  if (fs::exists(last_checkpoint())) candidates.push_back(last_checkpoint());
  for (auto& p : step_checkpoints()) candidates.push_back(p);
  if (candidates.empty()) return "fresh";
  const std::string again = "continue it with --resume " + path_ + " or choose another --out";
  if (config.train.no_auto_resume)
    return "error:" + path_ + " already holds a run (" + fs::path(candidates[0]).filename().string() + "); " +
           again + " (--no-auto-resume is on)";
  std::string first_failure;
  for (const auto& path : candidates) {
    try {
      const Checkpoint ckpt = Checkpoint::read(path);
      const std::string mismatch = world_size_mismatch(path, ckpt.world_size(), world);
      if (!mismatch.empty()) return "error:" + mismatch + ", or choose another --out";
      // A folder's measured normalisation is part of the stored run, not of the command that continues it.
      Config asked = config;
      adopt_settled_data(ckpt.config(), asked);
      const std::string diff =
          first_config_difference(ckpt.config(), asked, resume_mutable_keys(), path, "this command");
      if (!diff.empty())
        return "error:" + path_ + " holds a run with another configuration: " + diff + "; " + again;
      if (ckpt.position().epoch >= config.train.epochs) return "complete:" + path;
      return "resume:" + path;
    } catch (const InputError& e) {  // torn, corrupted or foreign: try the next older one
      notes.push_back(std::string(e.what()) + "; passed over for auto-resume");
      if (first_failure.empty()) first_failure = e.what();
    }
  }
  return "error:" + first_failure + " (no readable checkpoint in " + path_ + "); choose another --out";
}

// ---- Trainer ----

Trainer::Trainer(Config config, MethodPtr method, torch::Device device)
    : config_(std::move(config)), method_(std::move(method)), device_(device) {
  TORCH_CHECK(method_, "Trainer: no method");
  method_->to(device_);
  if (config_.train.memory_format == "channels-last")
    module_to_channels_last(*method_);  // before the optimizer makes its buffers
  if (config_.dist.sync_bn) convert_sync_batchnorm(*method_);
  set_fused_batchnorm(*method_, config_.train.fused_bn != "off");
  optimizer_ = make_optimizer(config_, *method_);
  for (auto& p : method_->parameters())
    if (p.requires_grad()) trained_params_.push_back(p);
  last_checkpoint_time_ = std::chrono::steady_clock::now();
}

void Trainer::resume_from(const Checkpoint& checkpoint) {
  checkpoint.load_model(*method_, "state does not match this method and model");
  checkpoint.load_optimizer(*optimizer_);
  if (auto boxes = checkpoint.boxes(); boxes.defined() && views_) views_->set_boxes(boxes);
  position_ = checkpoint.position();
  result_.nan_skips = position_.nan_skips;
}

StepOutcome Trainer::train_step(const std::vector<torch::Tensor>& views, const torch::Tensor& labels,
                                const torch::Tensor& indices, const StepContext& ctx) {
  const auto& tc = config_.train;
  const double lr = scheduled_lr(config_.optim, tc.epochs,
                                 static_cast<double>(ctx.global_step) / std::max<int64_t>(1, ctx.steps_per_epoch));
  auto& groups = optimizer_->param_groups();
  groups[0].options().set_lr(lr);
  for (size_t g = 1; g < groups.size(); ++g) groups[g].options().set_lr(config_.optim.lr);

  LossTerms out;
  {
    CpuBf16Autocast autocast(tc.precision == "bf16");  // thread-local: only the model's thread computes in bf16
    out = method_->loss(tc.memory_format == "channels-last" ? views_to_channels_last(views) : views, labels,
                        indices, ctx);
  }
  if (ctx.global_step == tc.inject_nan_at_step) {  // fault injection: the first loss term becomes NaN
    auto& first = out.terms.begin()->second;
    first = first * std::numeric_limits<double>::quiet_NaN();
  }
  torch::Tensor total = out.total();
  optimizer_->zero_grad();
  std::string bad;
  if (!total.isfinite().item<bool>()) {
    bad = "loss";
    for (const auto& [name, term] : out.terms)
      if (!term.isfinite().all().item<bool>()) bad = "loss term '" + name + "'";
  }
  StepOutcome step;
  step.stop = stop_requested();
  step.requeue = requeue_requested();
  if (dist::active()) {  // all ranks take the same decision: skip/stop together, or none does
    auto flags = dist::all_reduce_sum(
        torch::tensor({bad.empty() ? 0.0 : 1.0, step.stop ? 1.0 : 0.0, step.requeue ? 1.0 : 0.0}));
    if (bad.empty() && flags[0].item<double>() > 0) bad = "loss on another rank";
    if (!bad.empty() && dist::rank() != 0) bad += " (rank " + std::to_string(dist::rank()) + ")";
    step.stop = flags[1].item<double>() > 0;
    step.requeue = flags[2].item<double>() > 0;
  }
  if (bad.empty()) {
    total.backward();
    dist::all_reduce_gradients(trained_params_);
    if (!gradients_finite(*method_)) bad = "gradient";
  }
  if (!bad.empty()) {
    const std::string where = "non-finite " + bad + " at epoch " + std::to_string(ctx.epoch + 1) + ", step " +
                              std::to_string(ctx.step) + " (global step " + std::to_string(ctx.global_step) + ")";
    if (tc.on_nan == "skip") {
      log_warn(where + ": step skipped (--on-nan skip)");
      optimizer_->zero_grad();
      ++result_.nan_skips;
      step.skipped = true;
      return step;
    }
    throw RunError(where + (run_dir_ ? "; the last good checkpoint is kept in " + run_dir_->path() : "") +
                   " (use --on-nan skip to skip such steps)");
  }
  finish_step(config_, *method_, *optimizer_, ctx);
  step.loss = total.item<double>();
  for (const auto& [name, term] : out.terms) step.terms[name] = term.item<double>();
  step.stats = out.stats;
  return step;
}

bool Trainer::interval_due(int64_t steps_done) const {
  const auto& tc = config_.train;
  if (tc.checkpoint_every_steps > 0 && steps_done % tc.checkpoint_every_steps == 0) return true;
  if (tc.checkpoint_every_minutes <= 0) return false;
  const double minutes =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint_time_).count() / 60.0;
  return minutes >= tc.checkpoint_every_minutes;
}

double Trainer::save_checkpoint(const TrainPosition& at, bool best, bool interval) {
  if (!run_dir_ || !run_dir_->writer()) return 0;
  const auto start = std::chrono::steady_clock::now();
  const int64_t keep = config_.train.keep_checkpoints;
  // last.ckpt first, so that it is never older than a step file (auto-resume takes it).
  std::vector<std::string> paths{run_dir_->last_checkpoint()};
  if (best) paths.push_back(run_dir_->best_checkpoint());
  if (interval && keep > 0) paths.push_back(run_dir_->step_checkpoint(at.global_step));
  write_run_checkpoint(paths, config_, *method_, *optimizer_, at, dist::world_size(),
                       views_ ? views_->boxes() : torch::Tensor());
  if (interval && keep > 0) run_dir_->prune_step_checkpoints(keep);
  last_checkpoint_time_ = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(last_checkpoint_time_ - start).count();
}

Trainer::EpochOutcome Trainer::train_epoch(Loader& loader, int64_t epoch) {
  const auto& tc = config_.train;
  const bool lead = dist::rank() == 0;
  const int64_t steps = loader.steps_per_epoch(), total_steps = steps * tc.epochs;
  const int64_t first = epoch == position_.epoch ? position_.step : 0;
  const uint64_t seed = static_cast<uint64_t>(tc.seed);
  const std::string where = run_dir_ ? run_dir_->path() : std::string("memory");
  loader.start_epoch(epoch, first);
  method_->train();
  Progress progress(epoch, tc.epochs, steps, tc.log_every, !lead);
  progress.set_first(first);
  EpochOutcome outcome;
  double loss_sum = 0, last_lr = config_.optim.lr;
  int64_t counted = 0, images = 0;
  std::map<std::string, double> term_sums, stat_sums;
  const auto t0 = std::chrono::steady_clock::now();
  const double wait_before = loader.wait_seconds();
  while (auto batch = loader.next()) {
    StepContext ctx;
    ctx.epoch = epoch;
    ctx.step = batch->step;
    ctx.steps_per_epoch = steps;
    ctx.global_step = epoch * steps + batch->step;
    ctx.total_steps = total_steps;
    ctx.seed = mix_seed(seed, epoch, batch->step, kStepSeedTag);
    const StepOutcome step = train_step(batch->views, batch->labels.to(device_), batch->indices, ctx);
    last_lr = optimizer_->param_groups()[0].options().get_lr();
    for (auto& cb : callbacks_) cb->on_step_end(*this, ctx, step);
    if (step.skipped) continue;
    const int64_t b = batch->labels.size(0);
    loss_sum += step.loss * b;
    counted += b;
    images += b;
    for (const auto& [name, v] : step.terms) term_sums[name] += v * b;
    for (const auto& [name, v] : step.stats) stat_sums[name] += v * b;
    progress.update(batch->step, b * dist::world_size(), step.loss);

    if (step.stop || (tc.stop_after_steps > 0 && ctx.global_step + 1 == tc.stop_after_steps)) {
      progress.finish();
      position_ = {epoch, batch->step + 1, ctx.global_step + 1, position_.best_metric, result_.nan_skips};
      save_checkpoint(position_, false, false);
      log_info("stopped by signal after epoch " + std::to_string(epoch + 1) + " step " +
               std::to_string(batch->step) + "; checkpoint written to " + where + "/last.ckpt");
      outcome.stopped = true;
      outcome.requeue = step.stop && step.requeue;
      return outcome;
    }
    // A mid-epoch checkpoint; at the epoch's last step the epoch-end checkpoint is the one.
    if (lead && run_dir_ && batch->step + 1 < steps && interval_due(ctx.global_step + 1)) {
      const TrainPosition here{epoch, batch->step + 1, ctx.global_step + 1, position_.best_metric,
                               result_.nan_skips};
      const double took = save_checkpoint(here, false, true);
      log_info("checkpoint at global step " + std::to_string(here.global_step) + " (epoch " +
               std::to_string(epoch + 1) + ", step " + std::to_string(here.step) + ") written to " + where +
               "/last.ckpt" +
               (tc.keep_checkpoints > 0 ? " and " + run_dir_->step_checkpoint(here.global_step) : "") + " in " +
               std::to_string(static_cast<int64_t>(took * 1000 + 0.5)) + " ms");
    }
  }
  progress.finish();
  const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (dist::active()) {  // epoch averages over the global batch
    std::vector<double> sums{loss_sum, static_cast<double>(counted), static_cast<double>(images)};
    for (const auto& [name, v] : term_sums) sums.push_back(v);
    for (const auto& [name, v] : stat_sums) sums.push_back(v);
    auto total = dist::all_reduce_sum(torch::tensor(sums, torch::kDouble));
    auto at = [&](size_t i) { return total[static_cast<int64_t>(i)].item<double>(); };
    size_t i = 0;
    loss_sum = at(i++);
    counted = static_cast<int64_t>(at(i++));
    images = static_cast<int64_t>(at(i++));
    for (auto& [name, v] : term_sums) v = at(i++);
    for (auto& [name, v] : stat_sums) v = at(i++);
  }
  EpochRecord& rec = outcome.record;
  rec.epoch = epoch + 1;
  rec.values["loss"] = counted ? loss_sum / counted : 0.0;
  rec.values["lr"] = last_lr;
  for (const auto& [name, s] : term_sums) rec.terms[name] = counted ? s / counted : 0.0;
  for (const auto& [name, s] : stat_sums) rec.values[name] = counted ? s / counted : 0.0;
  rec.values["images_per_s"] = train_seconds > 0 ? images / train_seconds : 0.0;
  rec.values["train_seconds"] = train_seconds;
  // The share of the epoch the step spent waiting for the loader (decoding, augmentation): 0 when data keeps up.
  rec.values["data_wait_frac"] = train_seconds > 0 ? (loader.wait_seconds() - wait_before) / train_seconds : 0.0;
  rec.metric = -rec.values["loss"];
  return outcome;
}

TrainResult Trainer::fit(Loader& loader) {
  const auto& tc = config_.train;
  const bool lead = dist::rank() == 0;
  const int64_t steps = loader.steps_per_epoch();
  if (steps == 0)
    throw InputError("--batch-size " + std::to_string(tc.batch_size) + ": the loader has no batch to train on");
  result_.run_dir = run_dir_ ? run_dir_->path() : "";
  result_.nan_skips = position_.nan_skips;
  result_.epochs_done = position_.epoch;
  for (auto& cb : callbacks_) cb->on_fit_begin(*this);
  for (int64_t epoch = position_.epoch; epoch < tc.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& cb : callbacks_) cb->on_epoch_begin(*this, epoch);
    EpochOutcome outcome = train_epoch(loader, epoch);
    if (outcome.stopped) {
      result_.interrupted = true;
      result_.requeue = outcome.requeue;
      result_.epochs_done = epoch;
      for (auto& cb : callbacks_) cb->on_fit_end(*this, result_);
      return result_;
    }
    EpochRecord& rec = outcome.record;
    for (auto& cb : callbacks_) cb->on_epoch_end(*this, rec);
    if (rec.has("test_top1")) {
      result_.last_test_top1 = rec.value("test_top1");
      result_.best_test_top1 = std::max(result_.best_test_top1, result_.last_test_top1);
    }
    if (rec.has("knn_top1")) result_.last_knn_top1 = rec.value("knn_top1");
    rec.counts["nan_skips"] = result_.nan_skips;
    rec.values["rss_mb"] = resident_memory_mb();
    rec.values["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::ostringstream summary;
    summary << "epoch " << epoch + 1 << "/" << tc.epochs << ": loss " << std::fixed << std::setprecision(4)
            << rec.value("loss");
    if (rec.has("test_top1")) {
      summary << ", test top-1 " << rec.value("test_top1") << " (ECE " << rec.value("test_ece");
      if (rec.has("train_clean_top1")) summary << "; clean train top-1 " << rec.value("train_clean_top1");
      summary << ")";
    }
    if (rec.has("knn_top1")) summary << ", kNN top-1 " << rec.value("knn_top1");
    summary << ", " << std::setprecision(0) << rec.value("images_per_s") << " img/s (waiting for data "
            << std::setprecision(1) << 100.0 * rec.value("data_wait_frac") << "%), " << rec.value("seconds")
            << " s";
    log_info(summary.str());

    if (run_dir_) run_dir_->append_metrics(rec);
    for (auto& cb : callbacks_) cb->on_epoch_logged(*this, rec);
    const bool improved = rec.metric > position_.best_metric;
    position_ = {epoch + 1, 0, (epoch + 1) * steps, std::max(position_.best_metric, rec.metric),
                 result_.nan_skips};
    if (lead) save_checkpoint(position_, improved, interval_due(position_.global_step));
    result_.epochs_done = epoch + 1;
    bool stop_end = stop_requested(), requeue_end = requeue_requested();
    if (dist::active()) {
      auto flags = dist::all_reduce_sum(torch::tensor({stop_end ? 1.0 : 0.0, requeue_end ? 1.0 : 0.0}));
      stop_end = flags[0].item<double>() > 0;
      requeue_end = flags[1].item<double>() > 0;
    }
    if (stop_end && epoch + 1 < tc.epochs) {
      log_info("stopped by signal after epoch " + std::to_string(epoch + 1) + "; checkpoint written to " +
               (run_dir_ ? run_dir_->path() : std::string("memory")) + "/last.ckpt");
      result_.interrupted = true;
      result_.requeue = requeue_end;
      break;
    }
  }
  for (auto& cb : callbacks_) cb->on_fit_end(*this, result_);
  return result_;
}

// ---- callbacks ----

ClassifierEvalCallback::ClassifierEvalCallback(std::shared_ptr<Dataset> test, std::shared_ptr<Dataset> train_eval,
                                               Normalization norm, int64_t every)
    : test_(std::move(test)), train_eval_(std::move(train_eval)), norm_(std::move(norm)), every_(every) {}

void ClassifierEvalCallback::on_epoch_end(Trainer& trainer, EpochRecord& rec) {
  MethodImpl& method = trainer.method();
  if (!method.has_classifier() || !due(rec.epoch, every_, trainer.config().train.epochs)) return;
  const TopK top = evaluate_classifier_sharded(method, test_, norm_, trainer.device());
  rec.values["test_top1"] = top.top1;
  rec.values["test_top5"] = top.top5;
  rec.values["test_ece"] = top.ece;
  // Not the `train_top1` stat (view 1 of the augmented batches, train-mode BN, while the weights move).
  if (train_eval_)
    rec.values["train_clean_top1"] =
        evaluate_classifier_sharded(method, train_eval_, norm_, trainer.device()).top1;
  rec.metric = top.top1;
}

KnnMonitorCallback::KnnMonitorCallback(std::shared_ptr<Dataset> train, std::shared_ptr<Dataset> test,
                                       Normalization norm, int64_t every, int64_t k, double t)
    : train_(std::move(train)), test_(std::move(test)), norm_(std::move(norm)), every_(every), k_(k), t_(t) {}

void KnnMonitorCallback::on_epoch_end(Trainer& trainer, EpochRecord& rec) {
  if (!due(rec.epoch, every_, trainer.config().train.epochs)) return;
  MethodImpl& method = trainer.method();
  auto bank = extract_features_sharded(method, train_, norm_, trainer.device());
  auto query = extract_features_sharded(method, test_, norm_, trainer.device());
  const double knn = knn_top1(bank, train_->labels(), query, test_->labels(), train_->num_classes(), k_, t_);
  rec.values["knn_top1"] = knn;
  if (!method.has_classifier()) rec.metric = knn;
}

void CollapseMonitorCallback::on_epoch_end(Trainer& /*trainer*/, EpochRecord& rec) {
  if (rec.has("collapse_std")) {
    const double dim = rec.value("collapse_dim", 1.0);
    const double healthy = 1.0 / std::sqrt(dim), measured = rec.value("collapse_std");
    if (measured < 0.2 * healthy)
      log_warn("representation collapse detected: per-channel std of the normalised output is " +
               std::to_string(measured) + " (healthy ~ 1/sqrt(d) = " + std::to_string(healthy) + ")");
  }
  if (rec.has("effective_rank") && rec.has("rank_bound")) {
    // Behind a train-mode BatchNorm the std above stays ~1/sqrt(d) even for a batch on one line; the
    // effective rank (RankMe) sees it.
    const double bound = rec.value("rank_bound"), erank = rec.value("effective_rank");
    if (erank < kCollapsedRank)
      log_warn("representation collapse detected: effective rank of the normalised output is " +
               std::to_string(erank) + " of at most " + std::to_string(static_cast<int64_t>(bound)) +
               " (the batch lies on a few directions)");
  }
}

ContrastiveCropCallback::ContrastiveCropCallback(std::shared_ptr<ViewGenerator> views,
                                                 std::shared_ptr<Dataset> train, Normalization norm,
                                                 AugmentConfig augment)
    : views_(std::move(views)), train_(std::move(train)), norm_(std::move(norm)), augment_(std::move(augment)) {}

void ContrastiveCropCallback::on_epoch_begin(Trainer& /*trainer*/, int64_t epoch) {
  views_->use_boxes(augment_.crop == "contrastive" && epoch >= augment_.box_warmup);
}

void ContrastiveCropCallback::on_epoch_end(Trainer& trainer, EpochRecord& rec) {
  if (augment_.crop != "contrastive" || rec.epoch < augment_.box_warmup ||
      rec.epoch % augment_.box_interval != 0 || rec.epoch == trainer.config().train.epochs)
    return;
  views_->set_boxes(compute_boxes(trainer.method(), *train_, norm_, trainer.device(), augment_.box_thresh));
  rec.flags["boxes_updated"] = true;
  log_info("ContrastiveCrop: boxes recomputed over " + std::to_string(train_->size()) + " images");
}

void CurvesCallback::on_epoch_logged(Trainer& trainer, const EpochRecord& /*record*/) {
  if (auto* dir = trainer.run_directory(); dir && dir->writer()) plot_run_curves_or_warn(dir->path());
}

TrainResult run_training(Config config, const std::string& resume_dir) {
  const DistEnv denv = read_dist_env();
  const int64_t world = denv.world_size;
  const bool lead = denv.rank == 0;  // only rank 0 writes files and information lines
  set_log_rank(denv.rank);
  struct DistGuard {
    ~DistGuard() { dist::shutdown(); }
  } dist_guard;
  std::optional<Checkpoint> resume;  // the checkpoint this run continues (none for a fresh run)
  if (!resume_dir.empty()) {
    const std::string ckpt = resume_dir + "/last.ckpt";
    if (!fs::exists(ckpt)) throw InputError(ckpt + ": no checkpoint to resume from");
    resume = read_resume_point(ckpt, config, world);
    config.train.out = resume_dir;
  }
  resolve_defaults(config, world);
  const torch::Device device = resolve_device(config.train.device);
  const std::string speed = resolve_speed_defaults(config, speed_context(device));
  validate(config, world);
  const auto& tc = config.train;

  const int threads = configure_threads(static_cast<int>(tc.threads));
  torch::manual_seed(static_cast<uint64_t>(tc.seed));
  if (world > 1) {
    DistOptions dopt;
    dopt.backend = config.dist.backend;
    dopt.timeout_s = config.dist.timeout;
    dopt.bucket_mb = config.dist.bucket_mb;
    dist::init(denv, dopt, device);
  }

  // Rank 0 names the run directory (the default one has a time stamp) and is the only one to write in it.
  auto run_dir = std::make_shared<RunDirectory>(
      dist::broadcast_string(tc.out.empty() ? default_run_dir(config.method.name, config.data.dataset) : tc.out),
      lead);
  config.train.out = run_dir->path();
  // One training per run directory: a second one (a script started twice, a requeue while the first still runs)
  // would interleave its records and checkpoints with the first's.
  if (const std::string busy = dist::broadcast_string(lead ? run_dir->try_lock() : ""); !busy.empty())
    throw InputError(busy);
  std::vector<std::string> resume_notes;
  bool auto_resumed = false;
  if (resume_dir.empty()) {
    // Automatic resume: rank 0 looks at the directory and every rank takes its decision.
    const std::string decision =
        dist::broadcast_string(lead ? run_dir->resume_decision(config, world, resume_notes) : "");
    const auto colon = decision.find(':');
    const std::string kind = decision.substr(0, colon),
                      what = colon == std::string::npos ? "" : decision.substr(colon + 1);
    if (kind == "error") throw InputError(what);
    if (kind == "complete") {
      for (const auto& n : resume_notes) log_warn(n);
      log_info("run " + run_dir->path() + " is complete (" + what + " has all " + std::to_string(tc.epochs) +
               " epochs); nothing to do");
      TrainResult done;
      done.run_dir = run_dir->path();
      done.already_complete = true;
      done.epochs_done = tc.epochs;
      return done;
    }
    if (kind == "resume") {
      resume = read_resume_point(what, config, world);
      config.train.out = run_dir->path();
      resolve_defaults(config, world);
      validate(config, world);
      auto_resumed = true;
    }
  }

  DataSplits data = load_data(config);
  if (!resume) settle_data_config(config, data);  // a resumed run keeps the settled values it stored
  dist::barrier();  // every rank has checked the directory before rank 0 writes into it
  run_dir->open(config, resume ? resume->position().epoch : 0);
  for (const auto& n : resume_notes) log_warn(n);

  log_info("contrastive train: method " + config.method.name + ", dataset " + config.data.dataset + " (" +
           std::to_string(data.train->size()) + " train / " +
           (data.test ? std::to_string(data.test->size()) + " " + data.eval_split_name : "no held-out") + ", " +
           std::to_string(data.train->channels()) + "x" + std::to_string(data.train->height()) + "x" +
           std::to_string(data.train->width()) + "), run directory " + run_dir->path());
  log_info(describe_build(build_info()));
  log_info("CPU: " + describe_cpu(host_cpu()));
  log_info("device " + device.str() + ", " + std::to_string(threads) + " intra-op threads" +
           (tc.threads == 0 ? " (all cores; --threads overrides)" : ""));
  log_info(speed);
  if (dist::active()) {
    log_info(
        "distributed: world size " + std::to_string(world) + ", backend " + dist::backend_name() +
        ", launched by " + denv.source + ", rendezvous " + denv.master_addr + ":" +
        std::to_string(denv.master_port) + "; batch " + std::to_string(tc.batch_size) +
        " per process, global batch " + std::to_string(tc.batch_size * world) +
        (config.dist.sync_bn ? ", synchronised BatchNorm" : ", BatchNorm per process") +
        (config.dist.no_gather ? ", negatives from the local batch only" : ", negatives gathered from all ranks"));
  }

  MethodPtr method = make_method(method_spec(config, *data.train));
  if (!config.model.init_from.empty() && !resume) {  // a resumed run already has its own weights
    const InitReport init = load_state_dict(*method->backbone(), config.model.init_from);
    log_info("initialised " + std::to_string(init.loaded) + " backbone tensors from " + config.model.init_from +
             (init.classifier_left ? "; the file has no classifier: fc left at initialisation" : ""));
  }
  if (auto mask = method->labeled_mask(); mask.defined() && lead) {  // the semi-supervised split, for the record
    std::ostringstream ids;
    auto idx = mask.nonzero().view(-1);
    for (int64_t i = 0; i < idx.size(0); ++i) ids << idx[i].item<int64_t>() << "\n";
    run_dir->write_file("labeled_indices.txt", ids.str());
    log_info("semi-supervised: " + std::to_string(idx.size(0)) + " of " + std::to_string(mask.size(0)) +
             " training images keep their labels (list in labeled_indices.txt)");
  }
  Trainer trainer(config, method, device);
  log_info("model: " + config.model.arch + " width " + std::to_string(config.model.width) + ", " +
           std::to_string(count_parameters(*method)) + " parameters in training (backbone " +
           std::to_string(count_parameters(*method->backbone())) + ")");

  const Normalization norm = data_normalization(config, data.train->channels());
  auto views = make_config_view_generator(config, *data.train);
  log_info("augmentation: " + views->describe());
  trainer.set_run_directory(run_dir);
  trainer.set_view_generator(views);
  if (resume) {
    trainer.resume_from(*resume);
    const TrainPosition& pos = trainer.position();
    log_info(std::string(auto_resumed ? "auto-resume: this run directory holds a checkpoint of the same "
                                        "configuration; "
                                      : "") +
             "resumed from " + resume->path() + " at epoch " + std::to_string(pos.epoch + 1) + ", step " +
             std::to_string(pos.step) + " (global step " + std::to_string(pos.global_step) + ")");
  }
  // Every rank starts from rank 0's weights and buffers (identical by seeding already; this makes it a fact).
  dist::broadcast_module(*method);
  views->set_shard(dist::rank(), dist::world_size());

  LoaderOptions lopt;
  lopt.batch_size = tc.batch_size;
  lopt.shuffle = true;
  lopt.drop_last = tc.drop_last;
  lopt.seed = static_cast<uint64_t>(tc.seed);
  lopt.rank = dist::rank();
  lopt.world_size = dist::world_size();
  lopt.threads = tc.loader_threads;
  const uint64_t seed = static_cast<uint64_t>(tc.seed);
  Loader loader(data.train, lopt, [&, seed](Batch& b) {
    b.views = (*views)(b.images, b.indices, mix_seed(seed, b.epoch, b.step, kViewSeedTag), device);
  });
  if (loader.steps_per_epoch() == 0)
    throw InputError("--batch-size " + std::to_string(tc.batch_size) + ": no full batch in " +
                     std::to_string(data.train->size()) + " training images with --drop-last");

  if (data.test) {
    const auto train_eval = method->has_classifier() ? train_eval_subset(data.train, kTrainEvalImages) : nullptr;
    trainer.add_callback(std::make_shared<ClassifierEvalCallback>(data.test, train_eval, norm, tc.eval_every));
    trainer.add_callback(
        std::make_shared<KnnMonitorCallback>(data.train, data.test, norm, tc.knn_every, tc.knn_k, tc.knn_t));
  } else {
    log_info(std::string(data.train->labelled() ? "no held-out split" : "no labels") +
             ": the kNN and classifier monitors are off (best.ckpt follows the training loss); the collapse "
             "and effective-rank monitors stay on");
  }
  trainer.add_callback(std::make_shared<SkippedFilesCallback>(data.train, data.test));
  trainer.add_callback(std::make_shared<CollapseMonitorCallback>());
  trainer.add_callback(std::make_shared<ContrastiveCropCallback>(views, data.train, norm, config.augment));
  trainer.add_callback(std::make_shared<CurvesCallback>());
  if (tc.tensorboard == "on") trainer.add_callback(std::make_shared<TensorBoardCallback>(tc.tensorboard_every));
  return trainer.fit(loader);
}

}  // namespace contrastive
