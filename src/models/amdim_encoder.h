// AMDIM encoder (docs/methods.md §7), internal header: see src/methods/amdim.cpp for the design choices. The ONNX
// exporter (src/io/onnx_export.cpp) writes the same forward pass: keep the two in step.
#pragma once

#include <torch/torch.h>

#include "contrastive/models.h"

namespace contrastive {

namespace amdim_detail {

inline torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, bool bias = true) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(0).bias(bias));
}

}  // namespace amdim_detail

// Residual layer: out = [ReLU](conv1x1(ReLU(conv_k,s(x))) + shortcut(x)); shortcut = avg_pool(k,s) [+ 1×1 conv].
class AMDIMResLayerImpl : public torch::nn::Module {
 public:
  AMDIMResLayerImpl(int64_t in, int64_t out, int64_t k, int64_t stride, bool relu_out = true)
      : k_(k), stride_(stride), relu_out_(relu_out) {
    conv1 = register_module("conv1", amdim_detail::conv(in, out, k, stride));
    conv2 = register_module("conv2", amdim_detail::conv(out, out, 1));
    if (in != out) proj = register_module("proj", amdim_detail::conv(in, out, 1, 1, false));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv2->forward(torch::relu(conv1->forward(x)));
    auto s = (k_ > 1 || stride_ > 1) ? torch::avg_pool2d(x, {k_, k_}, {stride_, stride_}) : x;
    if (proj) s = proj->forward(s);
    auto y = h + s;
    return relu_out_ ? torch::relu(y) : y;
  }
  int64_t kernel() const { return k_; }
  int64_t stride() const { return stride_; }
  bool relu_out() const { return relu_out_; }
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, proj{nullptr};

 private:
  int64_t k_, stride_;
  bool relu_out_;
};
TORCH_MODULE(AMDIMResLayer);

// The "fake RKHS" embedding of a local map (§7): BN(shortcut(x) + conv2(ReLU(conv1(x)))), all 1×1; the
// shortcut starts near the identity and conv2 at zero, so at init the head passes the features through.
class AMDIMRKHSHeadImpl : public torch::nn::Module {
 public:
  AMDIMRKHSHeadImpl(int64_t in, int64_t out) {
    shortcut = register_module("shortcut", amdim_detail::conv(in, out, 1, 1, false));
    conv1 = register_module("conv1", amdim_detail::conv(in, out, 1));
    conv2 = register_module("conv2", amdim_detail::conv(out, out, 1));
    bn = register_module("bn", torch::nn::BatchNorm2d(out));
  }
  // Called after the generic init of the encoder (which would overwrite these).
  void reset_special() {
    torch::NoGradGuard no_grad;
    auto& w = shortcut->weight;  // [out, in, 1, 1]
    w.uniform_(-0.01, 0.01);
    const int64_t n = std::min(w.size(0), w.size(1));
    for (int64_t i = 0; i < n; ++i) w[i][i].fill_(1.0);
    conv2->weight.zero_();
    conv2->bias.zero_();
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return bn->forward(shortcut->forward(x) + conv2->forward(torch::relu(conv1->forward(x))));
  }
  torch::nn::Conv2d shortcut{nullptr}, conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(AMDIMRKHSHead);

struct AMDIMOutput {
  torch::Tensor r1;    // [N, n_rkhs]
  torch::Tensor r5;    // [N, n_rkhs, 5, 5]
  torch::Tensor r7;    // [N, n_rkhs, 7, 7]
  torch::Tensor map7;  // [N, 4·ndf, 7, 7] (before the RKHS head; ContrastiveCrop boxes)
};

class AMDIMEncoderImpl : public torch::nn::Module {
 public:
  AMDIMEncoderImpl(int64_t channels, int64_t ndf, int64_t depth = 3) : n_rkhs_(8 * ndf) {
    auto block = [depth](int64_t in, int64_t out, int64_t k, int64_t s) {
      torch::nn::Sequential seq(AMDIMResLayer(in, out, k, s));
      for (int64_t i = 1; i < depth; ++i) seq->push_back(AMDIMResLayer(out, out, 1, 1));
      return seq;
    };
    stem = register_module("stem", amdim_detail::conv(channels, ndf, 3));                  // 32 -> 30
    stem_res = register_module("stem_res", AMDIMResLayer(ndf, ndf, 1, 1));                 // 30
    down1 = register_module("down1", block(ndf, 2 * ndf, 4, 2));                           // 30 -> 14
    down2 = register_module("down2", block(2 * ndf, 4 * ndf, 2, 2));                       // 14 -> 7
    mid1 = register_module("mid1", block(4 * ndf, 4 * ndf, 3, 1));                         // 7 -> 5
    mid2 = register_module("mid2", block(4 * ndf, 4 * ndf, 3, 1));                         // 5 -> 3
    final_layer = register_module("final", AMDIMResLayer(4 * ndf, n_rkhs_, 3, 1, false));  // 3 -> 1
    final_bn = register_module("final_bn", torch::nn::BatchNorm2d(n_rkhs_));
    head5 = register_module("rkhs5", AMDIMRKHSHead(4 * ndf, n_rkhs_));
    head7 = register_module("rkhs7", AMDIMRKHSHead(4 * ndf, n_rkhs_));
    init_resnet_weights(*this);
    head5->reset_special();
    head7->reset_special();
  }

  AMDIMOutput forward(torch::Tensor x) {
    const int64_t H = x.size(2), W = x.size(3);
    if (H < 32 || W < 32) {  // 28×28 -> 32×32 (see the file comment)
      const int64_t ph = std::max<int64_t>(0, 32 - H), pw = std::max<int64_t>(0, 32 - W);
      x = torch::constant_pad_nd(x, {pw / 2, pw - pw / 2, ph / 2, ph - ph / 2}, 0.0);
    }
    auto h = stem_res->forward(torch::relu(stem->forward(x)));
    auto m7 = down2->forward(down1->forward(h));
    auto m5 = mid1->forward(m7);
    auto g = final_bn->forward(final_layer->forward(mid2->forward(m5)));
    AMDIMOutput out;
    out.r1 = g.mean({2, 3});
    out.r5 = head5->forward(m5);
    out.r7 = head7->forward(m7);
    out.map7 = m7;
    return out;
  }
  int64_t n_rkhs() const { return n_rkhs_; }

  torch::nn::Conv2d stem{nullptr};
  AMDIMResLayer stem_res{nullptr}, final_layer{nullptr};
  torch::nn::Sequential down1{nullptr}, down2{nullptr}, mid1{nullptr}, mid2{nullptr};
  torch::nn::BatchNorm2d final_bn{nullptr};
  AMDIMRKHSHead head5{nullptr}, head7{nullptr};

 private:
  int64_t n_rkhs_;
};
TORCH_MODULE(AMDIMEncoder);

}  // namespace contrastive
