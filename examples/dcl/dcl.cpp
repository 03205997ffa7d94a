// A method written outside the library: DCL, the decoupled contrastive loss (Yeh et al., Decoupled Contrastive
// Learning, ECCV 2022). SimCLR's NT-Xent keeps the positive pair in its denominator; DCL takes it out, so that
// the loss of an anchor i with positive p is
//
//   L_i = -s(i, p) / T + log sum_{k != i, k != p} exp(s(i, k) / T),      s = cosine similarity,
//
// averaged over the 2N anchors of a batch of N images with two views each. The program registers the method
// with register_method and runs the whole `contrastive` command line with it, so that
//
//   dcl train --method dcl --dataset fashion-mnist --temperature 0.2 ...
//   dcl methods
//
// train it with the library's Trainer and list it, its options as flags and as a `dcl:` YAML section, exactly as
// a built-in method. tests/consumer builds and runs it against the installed package (ctest's InstallConsumer).
#include <contrastive/cli.h>
#include <contrastive/method.h>
#include <torch/torch.h>

#include <limits>
#include <vector>

namespace {

using namespace contrastive;

// DCL's typed options, in the library's idiom: DCLOptions().temperature(0.2).
struct DCLOptions {
  TORCH_ARG(double, temperature) = 0.1;  // the paper's CIFAR value
  TORCH_ARG(int64_t, proj_dim) = 128;
};

// The loss over z [2N, D] (L2-normalised, view-major: rows i and i + N are the two views of image i).
torch::Tensor dcl_loss(const torch::Tensor& z, double temperature) {
  const int64_t n2 = z.size(0), n = n2 / 2;
  auto sim = torch::matmul(z, z.t()) / temperature;  // [2N, 2N]
  auto rows = torch::arange(n2, torch::TensorOptions().dtype(torch::kLong).device(z.device()));
  auto partner = (rows + n) % n2;
  auto positive = sim.gather(1, partner.unsqueeze(1)).squeeze(1);
  // The denominator leaves out the anchor itself and its positive.
  auto drop = torch::eye(n2, torch::TensorOptions().dtype(torch::kBool).device(z.device()));
  drop.index_put_({rows, partner}, true);
  auto negatives = sim.masked_fill(drop, -std::numeric_limits<float>::infinity());
  return (-positive + torch::logsumexp(negatives, 1)).mean();
}

// Backbone (the library's CIFAR ResNet) + SimCLR's projection head; both views go through one forward.
class DCLMethod : public ResNetMethod {
 public:
  explicit DCLMethod(const MethodSpec& spec)
      : ResNetMethod("dcl", spec, 0), options_(options_of<DCLOptions>(spec)) {
    head = register_module("head", make_projection_mlp(net->feature_dim(), 0, options_.proj_dim()));
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor& /*labels*/,
                 const torch::Tensor& /*indices*/, const StepContext& /*ctx*/) override {
    TORCH_CHECK(views.size() == 2, "DCL takes exactly 2 views");
    auto z = l2n(head->forward(net->features(torch::cat({views[0], views[1]}))));
    LossTerms out;
    out.terms["dcl"] = dcl_loss(z.to(torch::kFloat), options_.temperature());
    add_collapse_stats(out.stats, z.narrow(0, 0, views[0].size(0)));  // the trainer's collapse monitor
    return out;
  }

  MLP head{nullptr};

 private:
  DCLOptions options_;
};

MethodInfo dcl_info() {
  MethodInfo m;
  m.name = "dcl";
  m.summary = "DCL: SimCLR without the positive pair in the loss's denominator (an example method from outside)";
  m.paper = "Yeh et al., Decoupled Contrastive Learning, ECCV 2022";
  m.defaults.lr = 0.5;  // SimCLR's recipe in this library: 0.5 at batch 1024, scaled to the run's batch
  m.defaults.lr_batch = 1024;
  m.defaults.weight_decay = 1e-4;
  m.defaults.augment = "simclr-cifar";
  m.options = options_factory<DCLOptions>(DCLOptions(), [](DCLOptions& o) {
    return std::vector<OptionKey>{
        {"temperature", "temperature", &o.temperature(), "softmax temperature of the contrastive loss"},
        {"proj_dim", "proj-dim", &o.proj_dim(), "projection head output size"},
    };
  });
  m.validate = [](const Config& c, int64_t) {
    const auto& o = method_options<DCLOptions>(c.method, "dcl");
    check_temperature(o.temperature());
    check_at_least(o.proj_dim(), 1, "proj-dim");
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<DCLMethod>(spec); };
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  contrastive::register_method(dcl_info());  // before any Config is built
  return contrastive::cli::run(argc, argv);
}
