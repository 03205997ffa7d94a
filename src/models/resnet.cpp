#include <torch/torch.h>

#include "contrastive/common.h"
#include "contrastive/dist.h"
#include "contrastive/models.h"

namespace contrastive {

namespace nn = torch::nn;

SplitBatchNorm2dImpl::SplitBatchNorm2dImpl(int64_t channels, int64_t num_splits, double momentum, double eps)
    : channels_(channels), num_splits_(num_splits), momentum_(momentum), eps_(eps) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
  running_mean = register_buffer("running_mean", torch::zeros({channels}));
  running_var = register_buffer("running_var", torch::ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

void SplitBatchNorm2dImpl::reset_affine() {
  torch::NoGradGuard no_grad;
  weight.fill_(1);
  bias.zero_();
}

// Synchronised BatchNorm (--sync-bn, several processes): every rank computes the count, mean and centred sum
// of squares of its batch (two passes, as precise as BN's own), the ranks' statistics are gathered with
// gradient (the backward adds the gradients of all ranks) and combined exactly (Chan et al.'s parallel
// variance), so the statistics and their gradients are those of the global batch.
torch::Tensor SplitBatchNorm2dImpl::sync_forward(const torch::Tensor& x) {
  const int64_t c = x.size(1);
  auto xf = x.to(torch::kFloat);
  auto m = xf.mean({0, 2, 3});
  auto m2 = (xf - m.view({1, c, 1, 1})).square().sum({0, 2, 3});
  auto n = torch::full({1}, static_cast<double>(x.numel() / c), xf.options());
  auto all = dist::all_gather_with_grad(torch::cat({m, m2, n}).unsqueeze(0));  // [W, 2C+1]
  auto counts = all.narrow(1, 2 * c, 1).detach();                              // [W, 1]
  auto total = counts.sum();
  auto means = all.narrow(1, 0, c);
  auto mean = (means * counts).sum(0) / total;
  auto var = (all.narrow(1, c, c).sum(0) + (counts * (means - mean).square()).sum(0)) / total;  // biased
  {
    torch::NoGradGuard no_grad;
    const double nn = total.item<double>();
    running_mean.mul_(1 - momentum_).add_(mean.detach(), momentum_);
    running_var.mul_(1 - momentum_).add_(var.detach() * (nn / std::max(1.0, nn - 1)), momentum_);
    num_batches_tracked.add_(1);
  }
  auto scale = weight * torch::rsqrt(var + eps_);
  auto shift = bias - mean * scale;
  return (xf * scale.view({1, c, 1, 1}) + shift.view({1, c, 1, 1})).to(x.scalar_type());
}

int64_t convert_sync_batchnorm(torch::nn::Module& module, bool on) {
  int64_t switched = 0;
  for (auto& m : module.modules(/*include_self=*/true))
    if (auto* bn = m->as<SplitBatchNorm2dImpl>(); bn && bn->num_splits() <= 1) {
      bn->set_sync(on);
      ++switched;
    }
  return switched;
}

torch::Tensor SplitBatchNorm2dImpl::forward(const torch::Tensor& x) {
  if (is_training() && num_splits_ <= 1 && sync_ && dist::active()) return sync_forward(x);
  if (!is_training() || num_splits_ <= 1) {
    if (is_training()) {
      torch::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
    }
    return torch::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum_, eps_,
                             /*cudnn_enabled=*/true);
  }
  const int64_t n = x.size(0), c = x.size(1), s = num_splits_;
  TORCH_CHECK(n % s == 0, "SplitBatchNorm: batch ", n, " is not divisible by ", s, " splits");
  // view(-1, C*S, H, W) puts sample n*S+s into channel block s: split s = samples with index mod S == s.
  auto mean = running_mean.repeat({s});
  auto var = running_var.repeat({s});
  auto y = torch::batch_norm(x.reshape({-1, c * s, x.size(2), x.size(3)}), weight.repeat({s}), bias.repeat({s}),
                             mean, var, /*training=*/true, momentum_, eps_,
                             /*cudnn_enabled=*/true);
  {
    torch::NoGradGuard no_grad;
    running_mean.copy_(mean.view({s, c}).mean(0));
    running_var.copy_(var.view({s, c}).mean(0));
    num_batches_tracked.add_(1);
  }
  return y.view_as(x);
}

torch::Tensor SplitBatchNorm2dImpl::forward_relu(const torch::Tensor& x, const torch::Tensor& residual) {
  if (fused_ && is_training() && num_splits_ <= 1 && !(sync_ && dist::active()) &&
      fused_bn_relu_applies(x, residual, weight)) {
    {
      torch::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
    }
    return fused_batch_norm_relu(x, residual, weight, bias, running_mean, running_var, momentum_, eps_);
  }
  auto y = forward(x);
  if (residual.defined()) y += residual;
  return torch::relu(y);
}

int64_t set_fused_batchnorm(torch::nn::Module& module, bool on) {
  int64_t n = 0;
  for (auto& m : module.modules(/*include_self=*/true))
    if (auto* bn = m->as<SplitBatchNorm2dImpl>()) {
      bn->set_fused(on);
      ++n;
    }
  return n;
}

namespace {

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

nn::Sequential make_downsample(int64_t in, int64_t out, int64_t stride, int64_t bn_splits) {
  if (stride == 1 && in == out) return nullptr;
  return nn::Sequential(conv(in, out, 1, stride, 0), SplitBatchNorm2d(out, bn_splits));
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t planes, int64_t stride, int64_t bn_splits) {
  conv1 = register_module("conv1", conv(in, planes, 3, stride, 1));
  bn1 = register_module("bn1", SplitBatchNorm2d(planes, bn_splits));
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
  bn2 = register_module("bn2", SplitBatchNorm2d(planes, bn_splits));
  downsample = make_downsample(in, planes, stride, bn_splits);
  if (downsample) register_module("downsample", downsample);
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  auto out = bn1->forward_relu(conv1(x));
  return bn2->forward_relu(conv2(out), downsample ? downsample->forward(x) : x);
}

BottleneckImpl::BottleneckImpl(int64_t in, int64_t planes, int64_t stride, int64_t bn_splits) {
  conv1 = register_module("conv1", conv(in, planes, 1, 1, 0));
  bn1 = register_module("bn1", SplitBatchNorm2d(planes, bn_splits));
  conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1));
  bn2 = register_module("bn2", SplitBatchNorm2d(planes, bn_splits));
  conv3 = register_module("conv3", conv(planes, planes * expansion, 1, 1, 0));
  bn3 = register_module("bn3", SplitBatchNorm2d(planes * expansion, bn_splits));
  downsample = make_downsample(in, planes * expansion, stride, bn_splits);
  if (downsample) register_module("downsample", downsample);
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  auto out = bn1->forward_relu(conv1(x));
  out = bn2->forward_relu(conv2(out));
  return bn3->forward_relu(conv3(out), downsample ? downsample->forward(x) : x);
}

ResNetImpl::ResNetImpl(const ResNetOptions& options) : options_(options) {
  std::vector<int64_t> blocks;
  bool bottleneck = false;
  if (options.arch() == "resnet18") {
    blocks = {2, 2, 2, 2};
  } else if (options.arch() == "resnet34") {
    blocks = {3, 4, 6, 3};
  } else if (options.arch() == "resnet50") {
    blocks = {3, 4, 6, 3};
    bottleneck = true;
  } else {
    throw InputError("unknown ResNet architecture '" + options.arch() + "' (resnet18 | resnet34 | resnet50)");
  }
  const int64_t w = options.width(), splits = options.bn_splits();
  conv1 = register_module("conv1", conv(options.in_channels(), w, 3, 1, 1));
  bn1 = register_module("bn1", SplitBatchNorm2d(w, splits));
  int64_t in = w;
  const int64_t expansion = bottleneck ? BottleneckImpl::expansion : BasicBlockImpl::expansion;
  auto make_layer = [&](int64_t planes, int64_t n, int64_t stride) {
    nn::Sequential layer;
    for (int64_t b = 0; b < n; ++b) {
      const int64_t s = b == 0 ? stride : 1;
      if (bottleneck)
        layer->push_back(Bottleneck(in, planes, s, splits));
      else
        layer->push_back(BasicBlock(in, planes, s, splits));
      in = planes * expansion;
    }
    stage_channels_.push_back(in);
    return layer;
  };
  layer1 = register_module("layer1", make_layer(w, blocks[0], 1));
  layer2 = register_module("layer2", make_layer(w * 2, blocks[1], 2));
  layer3 = register_module("layer3", make_layer(w * 4, blocks[2], 2));
  layer4 = register_module("layer4", make_layer(w * 8, blocks[3], 2));
  if (options.num_classes() > 0) fc = register_module("fc", nn::Linear(in, options.num_classes()));
  init_resnet_weights(*this);
  if (options.zero_init_residual()) {
    torch::NoGradGuard no_grad;
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* b = m->as<BasicBlockImpl>()) b->bn2->weight.zero_();
      if (auto* b = m->as<BottleneckImpl>()) b->bn3->weight.zero_();
    }
  }
}

std::vector<torch::Tensor> ResNetImpl::stages(const torch::Tensor& x) {
  auto f0 = bn1->forward_relu(conv1(x));
  auto f1 = layer1->forward(f0);
  auto f2 = layer2->forward(f1);
  auto f3 = layer3->forward(f2);
  auto f4 = layer4->forward(f3);
  return {f1, f2, f3, f4};
}

torch::Tensor ResNetImpl::features(const torch::Tensor& x) { return stages(x)[3].mean({2, 3}); }

torch::Tensor ResNetImpl::forward(const torch::Tensor& x) {
  auto f = features(x);
  return fc ? fc->forward(f) : f;
}

MLPImpl::MLPImpl(const MLPOptions& o) {
  net = register_module("net", nn::Sequential());
  int64_t in = o.in();
  for (int64_t l = 0; l + 1 < o.layers(); ++l) {
    net->push_back(nn::Linear(nn::LinearOptions(in, o.hidden()).bias(o.hidden_bias())));
    if (o.hidden_bn()) net->push_back(nn::BatchNorm1d(o.hidden()));
    net->push_back(nn::ReLU());
    in = o.hidden();
  }
  auto last = nn::Linear(in, o.out());
  if (o.freeze_last_bias()) last->bias.set_requires_grad(false);
  net->push_back(last);
  if (o.last_bn()) net->push_back(nn::BatchNorm1d(nn::BatchNormOptions(o.out()).affine(o.last_bn_affine())));
}

SepConvImpl::SepConvImpl(int64_t in, int64_t out) {
  auto dw = [](int64_t c, int64_t stride) {
    return nn::Conv2d(nn::Conv2dOptions(c, c, 3).stride(stride).padding(1).groups(c).bias(false));
  };
  auto pw = [](int64_t a, int64_t b) { return nn::Conv2d(nn::Conv2dOptions(a, b, 1).bias(false)); };
  net = register_module("net", nn::Sequential(dw(in, 2), pw(in, in), SplitBatchNorm2d(in), nn::ReLU(), dw(in, 1),
                                              pw(in, out), SplitBatchNorm2d(out), nn::ReLU()));
}

torch::Tensor SepConvImpl::forward(const torch::Tensor& x) {
  auto y = net[1]->as<nn::Conv2d>()->forward(net[0]->as<nn::Conv2d>()->forward(x));
  y = net[2]->as<SplitBatchNorm2d>()->forward_relu(y);
  y = net[5]->as<nn::Conv2d>()->forward(net[4]->as<nn::Conv2d>()->forward(y));
  return net[6]->as<SplitBatchNorm2d>()->forward_relu(y);
}

void init_resnet_weights(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {  // called from constructors: no shared_from_this
    if (auto* c = m->as<nn::Conv2dImpl>()) {
      nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
    } else if (auto* sb = m->as<SplitBatchNorm2dImpl>()) {
      sb->reset_affine();
    } else if (auto* b = m->as<nn::BatchNorm2dImpl>()) {
      if (b->options.affine()) {
        b->weight.fill_(1);
        b->bias.zero_();
      }
    }
  }
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace contrastive
