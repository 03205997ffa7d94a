// Networks in LibTorch's own idiom (XImpl + TORCH_MODULE, options with TORCH_ARG).
// CIFAR ResNet: docs/methods.md §0. Parameter names follow torchvision (conv1, bn1, layer1.0.conv1, ...,
// downsample.0/1, fc) so an exported state dict loads into a torchvision ResNet with the CIFAR stem.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

namespace contrastive {

// BatchNorm2d that, in training with num_splits > 1, normalises interleaved sub-batches separately: split s
// holds the samples with index n mod S == s (§4 SplitBatchNorm). Same parameter and buffer names as BN.
// With one split, in training, set_sync(true) and several processes, the statistics are those of the global
// batch (synchronised BatchNorm, --sync-bn; see convert_sync_batchnorm below).
// (Its own module rather than a BatchNorm2dImpl subclass: Debian's libtorch does not export the pieces a
// subclass's vtable needs.)
class SplitBatchNorm2dImpl : public torch::nn::Module {
 public:
  SplitBatchNorm2dImpl(int64_t channels, int64_t num_splits = 1, double momentum = 0.1, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x);
  // relu(forward(x) + residual) (no residual when it is undefined). In training, with one split and no sync, on
  // a float32 or bfloat16 channels-last CPU tensor, one fused operator (fused_batch_norm_relu) unless
  // set_fused(false).
  torch::Tensor forward_relu(const torch::Tensor& x, const torch::Tensor& residual = {});
  int64_t num_splits() const { return num_splits_; }
  double eps() const { return eps_; }
  void set_fused(bool on) { fused_ = on; }
  bool fused() const { return fused_; }
  void reset_affine();  // γ = 1, β = 0
  // Synchronised statistics over all processes (when dist::active() and one split); off by default.
  void set_sync(bool on) { sync_ = on; }
  bool sync() const { return sync_; }

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  torch::Tensor sync_forward(const torch::Tensor& x);
  int64_t channels_, num_splits_;
  double momentum_, eps_;
  bool sync_ = false;
  bool fused_ = true;
};
TORCH_MODULE(SplitBatchNorm2d);

// Training-mode batch norm (batch statistics; running_mean / running_var updated with `momentum` when defined),
// plus `residual` when defined, then ReLU, as one autograd operator for float32 or bfloat16 (the autocast path)
// channels-last CPU tensors with float32 weights (fused_bn_relu_applies says whether a given input qualifies). Not
// twice differentiable. docs/benchmarks.md, "Fused BatchNorm + ReLU".
torch::Tensor fused_batch_norm_relu(const torch::Tensor& x, const torch::Tensor& residual,
                                    const torch::Tensor& weight, const torch::Tensor& bias,
                                    torch::Tensor& running_mean, torch::Tensor& running_var, double momentum,
                                    double eps);
bool fused_bn_relu_applies(const torch::Tensor& x, const torch::Tensor& residual, const torch::Tensor& weight);

// Turns the fused BN + ReLU path of every SplitBatchNorm2d inside `module` on or off (on by default);
// returns how many layers it set. --fused-bn off.
int64_t set_fused_batchnorm(torch::nn::Module& module, bool on);

// Switches every single-split SplitBatchNorm2d inside `module` to synchronised statistics (or back, with
// on = false); returns how many layers it switched. The counterpart of torch's
// SyncBatchNorm.convert_sync_batchnorm: the choice lives in the module, not in a process-wide flag.
int64_t convert_sync_batchnorm(torch::nn::Module& module, bool on = true);

struct ResNetOptions {
  TORCH_ARG(std::string, arch) = "resnet18";  // resnet18 | resnet34 | resnet50
  TORCH_ARG(int64_t, width) = 64;             // channels of the first stage
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(int64_t, num_classes) = 0;  // 0: no classifier (fc) at all
  TORCH_ARG(bool, zero_init_residual) = false;
  TORCH_ARG(int64_t, bn_splits) = 1;  // SplitBatchNorm everywhere when > 1
};

class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride, int64_t bn_splits);
  torch::Tensor forward(const torch::Tensor& x);
  static constexpr int64_t expansion = 1;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  SplitBatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

class BottleneckImpl : public torch::nn::Module {
 public:
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride, int64_t bn_splits);
  torch::Tensor forward(const torch::Tensor& x);
  static constexpr int64_t expansion = 4;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  SplitBatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

// CIFAR ResNet: 3x3 stride-1 stem, no max-pool, stages with strides 1/2/2/2, any input size and channels.
class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetOptions& options);
  // The four stage outputs f1..f4 (for CDS heads and ContrastiveCrop).
  std::vector<torch::Tensor> stages(const torch::Tensor& x);
  // Global-average-pooled last stage: [B, feature_dim()].
  torch::Tensor features(const torch::Tensor& x);
  // Logits when num_classes > 0, otherwise the pooled features.
  torch::Tensor forward(const torch::Tensor& x);
  int64_t feature_dim() const { return stage_channels_[3]; }
  int64_t stage_channels(int64_t stage) const { return stage_channels_.at(stage); }
  const ResNetOptions& options() const { return options_; }

  torch::nn::Conv2d conv1{nullptr};
  SplitBatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};

 private:
  ResNetOptions options_;
  std::vector<int64_t> stage_channels_;
};
TORCH_MODULE(ResNet);

// Multi-layer perceptron head: Linear(in, hidden) [-> BN] -> ReLU -> ... -> Linear(.., out) [-> BN(affine?)].
struct MLPOptions {
  MLPOptions(int64_t in, int64_t hidden, int64_t out) : in_(in), hidden_(hidden), out_(out) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(int64_t, out);
  TORCH_ARG(int64_t, layers) = 2;       // number of Linear layers
  TORCH_ARG(bool, hidden_bn) = false;   // BN after each hidden Linear
  TORCH_ARG(bool, hidden_bias) = true;  // bias of the hidden Linears
  TORCH_ARG(bool, last_bn) = false;     // BN after the last Linear
  TORCH_ARG(bool, last_bn_affine) = true;
  TORCH_ARG(bool, freeze_last_bias) = false;  // SimSiam: last Linear's bias frozen (BN removes it anyway)
};

class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(const MLPOptions& options);
  torch::Tensor forward(const torch::Tensor& x) { return net->forward(x); }
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(MLP);

// Depthwise-separable downsampling block of CDS (§2): DW3x3 s2 -> PW -> BN -> ReLU -> DW3x3 -> PW -> BN -> ReLU.
// The BNs are SplitBatchNorm2d (one split: plain BN, same state names as nn::BatchNorm2d), each run with its ReLU
// through forward_relu; the ReLU modules stay in `net` so that its indices (net.2, net.6) do not move.
class SepConvImpl : public torch::nn::Module {
 public:
  SepConvImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(SepConv);

// Applies kaiming_normal_(fan_out, relu) to convs and γ=1, β=0 to BNs of a module tree (§0).
void init_resnet_weights(torch::nn::Module& module);
// Number of trainable and non-trainable scalars.
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace contrastive
