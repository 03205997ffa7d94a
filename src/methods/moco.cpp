// MoCo v2 (docs/methods.md §4): query encoder = ResNet (SplitBatchNorm for single-process shuffle-BN) + v2 MLP
// head; key encoder = a frozen copy updated by momentum; a queue [D,K] of past keys as negatives.
//
// Registered names: "backbone"/"head" (query encoder, so export and kNN see the usual names), "key_backbone"/
// "key_head" (key encoder), buffers "queue" and "queue_ptr". All of them are saved in checkpoints.
#include "contrastive/methods/moco.h"

#include <limits>

#include "contrastive/dist.h"
#include "contrastive/losses.h"
#include "contrastive/method.h"

namespace contrastive {

class MoCoMethod : public ResNetMethod {
 public:
  explicit MoCoMethod(const MethodSpec& spec)
      : ResNetMethod("moco", spec, 0, options_of<MoCoOptions>(spec).bn_splits()),
        cfg_(options_of<MoCoOptions>(spec)) {
    const int64_t d = net->feature_dim();
    // v2: Linear(d,d)-ReLU-Linear (--proj-bn adds a BN after the hidden Linear)
    head = register_module("head", make_projection_mlp(d, d, cfg_.proj_dim(), cfg_.proj_bn()));
    key_net = register_module("key_backbone", make_backbone(spec.config, spec.in_channels, 0, cfg_.bn_splits()));
    key_head = register_module("key_head", make_projection_mlp(d, d, cfg_.proj_dim(), cfg_.proj_bn()));
    // θ_k starts as a copy of θ_q and never receives gradient (§4, §9.2).
    copy_and_freeze(*key_net, *net);
    copy_and_freeze(*key_head, *head);
    auto gen = step_generator(static_cast<uint64_t>(spec.config.train.seed) ^ 0x0DE0C0ULL);
    auto q0 = torch::randn({cfg_.proj_dim(), cfg_.queue_size()}, gen, torch::kFloat);
    queue = register_buffer(
        "queue", torch::nn::functional::normalize(q0, torch::nn::functional::NormalizeFuncOptions().dim(0)));
    queue_ptr = register_buffer("queue_ptr", torch::zeros({1}, torch::kLong));
  }

  LossTerms loss(const std::vector<torch::Tensor>& views, const torch::Tensor&, const torch::Tensor&,
                 const StepContext& ctx) override {
    TORCH_CHECK(views.size() == 2, "MoCo needs exactly 2 views");
    // §4 order: 1. queries; 2. momentum update; 3. keys (shuffled); 4. logits; 5. enqueue.
    auto q1 = query(views[0]);
    auto q2 = cfg_.symmetric() ? query(views[1]) : torch::Tensor();
    momentum_update();
    auto gen = step_generator(ctx.seed);
    torch::Tensor k2_all, k1_all;
    auto k2 = key(views[1], gen, k2_all);
    auto k1 = cfg_.symmetric() ? key(views[0], gen, k1_all) : torch::Tensor();
    LossTerms out;
    const double T = cfg_.temperature();
    // The current keys must not be negatives of the current batch: the queue is read before the enqueue.
    auto negatives = queue.clone().detach();
    torch::Tensor l = functional::info_nce(q1, k2, negatives, T);
    // §4 --symmetric: a SUM of both directions (§9.4), and 2B keys enqueued.
    if (cfg_.symmetric()) l = l + functional::info_nce(q2, k1, negatives, T);
    out.terms["infonce"] = l;
    enqueue(cfg_.symmetric() ? torch::cat({k1_all, k2_all}) : k2_all);  // keys of every rank
    add_collapse_stats(out.stats, q1);
    return out;
  }

  MLP head{nullptr};
  ResNet key_net{nullptr};
  MLP key_head{nullptr};
  torch::Tensor queue, queue_ptr;

 private:
  torch::Tensor query(const torch::Tensor& x) { return l2n(head->forward(net->features(x))); }

  // Shuffle -> key encoder -> unshuffle (§4 ShuffleBN). With SplitBatchNorm the permutation decides which
  // samples share BN statistics, so a key cannot find its query through the batch statistics. The key
  // encoder stays in train mode: it normalises with its own batch statistics, like the reference.
  // Several processes (the reference's shuffle-BN): the key inputs of all ranks are gathered and shuffled
  // with a permutation common to all ranks (the step seed), each rank encodes its share, the keys are gathered
  // and unshuffled. Returns this rank's keys; `all` receives the keys of the global batch (for the queue).
  torch::Tensor key(const torch::Tensor& x, at::Generator& gen, torch::Tensor& all) {
    torch::NoGradGuard no_grad;
    // With one process the gathers are the identity and rank() is 0: the reference's single-GPU shuffle.
    const int64_t B = x.size(0);
    auto x_all = dist::all_gather(x);
    const int64_t n = x_all.size(0);
    auto perm = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong)).to(x.device());
    auto mine = perm.narrow(0, dist::rank() * B, B);
    auto k = l2n(key_head->forward(key_net->features(x_all.index_select(0, mine))));
    all = dist::all_gather(k).index_select(0, torch::argsort(perm));
    return all.narrow(0, dist::rank() * B, B);
  }

  void momentum_update() {
    ema_parameters(*key_net, *net, cfg_.momentum_ema());
    ema_parameters(*key_head, *head, cfg_.momentum_ema());
  }

  // Writes the keys as columns at the pointer; K is a multiple of the keys per step (validated in config).
  void enqueue(const torch::Tensor& keys) {
    torch::NoGradGuard no_grad;
    const int64_t n = keys.size(0), K = queue.size(1);
    const int64_t ptr = queue_ptr.item<int64_t>();
    TORCH_CHECK(K % n == 0, "MoCo: queue size ", K, " is not a multiple of the ", n, " keys per step");
    queue.narrow(1, ptr, n).copy_(keys.t().to(queue.dtype()));
    queue_ptr.fill_((ptr + n) % K);
  }

  MoCoOptions cfg_;
};

void register_moco(MethodRegistry& registry) {
  MethodInfo m;
  m.name = "moco";
  m.summary = "MoCo v2: a momentum key encoder and a queue of past keys as negatives";
  m.paper = "He et al., CVPR 2020; Chen et al., Improved Baselines with Momentum Contrastive Learning, 2020";
  m.full_batches = true;  // the queue and SplitBatchNorm need full batches
  m.defaults.lr = 0.06;   // CIFAR colab: 0.06 at batch 512, wd 5e-4
  m.defaults.lr_batch = 512;
  m.defaults.weight_decay = 5e-4;
  m.defaults.augment = "simclr-cifar";
  m.options = options_factory<MoCoOptions>(MoCoOptions(), [](MoCoOptions& o) {
    return std::vector<OptionKey>{
        {"temperature", "temperature", &o.temperature(), "softmax temperature of InfoNCE"},
        {"queue_size", "queue-size", &o.queue_size(), "queue length K (a multiple of the keys per step)"},
        {"momentum_ema", "ema", &o.momentum_ema(), "key encoder momentum m"},
        {"symmetric", "symmetric", &o.symmetric(), "symmetric loss (both views as queries)"},
        {"bn_splits", "bn-splits", &o.bn_splits(), "SplitBatchNorm splits (shuffle-BN on one process)"},
        {"proj_dim", "proj-dim", &o.proj_dim(), "projection head output size"},
        {"proj_bn", "proj-bn", &o.proj_bn(), "BatchNorm after the projection head's hidden layer"},
    };
  });
  m.validate = [](const Config& c, int64_t world_size) {
    const auto& o = method_options<MoCoOptions>(c.method, "moco");
    check_temperature(o.temperature());
    check_unit(o.momentum_ema(), "ema");
    check_at_least(o.bn_splits(), 1, "bn-splits");
    check_at_least(o.proj_dim(), 1, "proj-dim");
    const int64_t per_step = (o.symmetric() ? 2 : 1) * std::max<int64_t>(1, world_size);
    const int64_t batch = c.train.batch_size;
    // Before multiplying: a huge batch size would overflow int64 (undefined behaviour, seen by UBSan).
    check_option(batch <= std::numeric_limits<int64_t>::max() / per_step, "batch-size",
                 show_value(batch) + " (too large)");
    const int64_t keys_per_step = batch * per_step;
    check_option(o.queue_size() >= keys_per_step && o.queue_size() % keys_per_step == 0, "queue-size",
                 show_value(o.queue_size()) + " (must be a multiple of the keys per step, " +
                     show_value(keys_per_step) + ")");
    check_option(batch % o.bn_splits() == 0, "bn-splits",
                 show_value(o.bn_splits()) + " (must divide the batch size " + show_value(batch) + ")");
  };
  m.make = [](const MethodSpec& spec) -> MethodPtr { return std::make_shared<MoCoMethod>(spec); };
  registry.add(std::move(m));
}

}  // namespace contrastive
