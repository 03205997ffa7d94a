// `contrastive eval`, `knn` and `linear`: a checkpoint scored on its held-out split (heads dropped). Under
// `contrastive launch` or torchrun the forward passes are sharded over the processes and rank 0 prints.
#include <torch/torch.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "contrastive/common.h"
#include "contrastive/dist.h"
#include "contrastive/eval.h"
#include "contrastive/platform.h"
#include "contrastive/train.h"

namespace contrastive::cli {
namespace {

enum class Kind { kEval, kKnn, kLinear };

struct EvaluateArgs {
  std::string checkpoint, device = "auto", dataset, data_path;
  bool json = false;
  int64_t threads = 0, knn_k = 200, lin_epochs = 30, eval_batch = 512;
  double knn_t = 0.1, lin_lr = 0.1, lin_wd = 0.0, lin_val = 0.1;
};

void print_json(const nlohmann::json& j) { std::cout << j.dump() << std::endl; }

void add_common(CLI::App* c, EvaluateArgs& a) {
  c->add_option("--checkpoint", a.checkpoint, "checkpoint file (RUN_DIR/best.ckpt or last.ckpt)")->required();
  c->add_option("--dataset", a.dataset, "evaluate on another dataset of the same shape");
  c->add_option("--data", a.data_path, "path of that dataset");
  c->add_option("--device", a.device, "auto | cpu | cuda")->capture_default_str();
  c->add_option("--threads", a.threads, "intra-op threads (0 = all cores)")->capture_default_str();
  c->add_option("--batch-size", a.eval_batch, "evaluation batch size")->capture_default_str();
  c->add_flag("--json", a.json, "print one JSON object on stdout");
}

int run(Kind kind, const EvaluateArgs& a) {
  const char* name = kind == Kind::kEval ? "eval" : kind == Kind::kKnn ? "knn" : "linear";
  configure_threads(static_cast<int>(a.threads));
  const DistEnv denv = read_dist_env();
  if (denv.world_size > 1) {
    dist::init(denv, DistOptions{}, resolve_device(a.device));
    set_log_rank(denv.rank);
  }
  const bool lead = denv.rank == 0;
  DataConfig override_data;
  if (!a.dataset.empty()) {
    override_data.dataset = a.dataset;
    override_data.path = a.data_path;
  }
  if (a.eval_batch < 1) throw InputError("invalid value for --batch-size: " + std::to_string(a.eval_batch));
  LoadedModel m = load_model(a.checkpoint, a.dataset.empty() ? nullptr : &override_data, a.device);
  if (!m.data.train->labelled() || !m.data.test)
    throw InputError(std::string(name) + " needs labelled data with a held-out split, and " + m.config.data.path +
                     " has " + (m.data.train->labelled() ? "no held-out split" : "no labels") +
                     "; `contrastive embed --data DIR` gives features of any folder");
  if (kind == Kind::kEval) {
    if (!m.method->has_classifier())
      throw InputError(a.checkpoint + ": method '" + m.config.method.name +
                       "' has no classifier; use `contrastive knn` or `contrastive linear`");
    TopK top = evaluate_classifier_sharded(*m.method, m.data.test, m.norm, m.device, a.eval_batch);
    if (!lead) return 0;
    if (a.json) {
      print_json({{"top1", top.top1},
                  {"top5", top.top5},
                  {"ece", top.ece},
                  {"count", top.count},
                  {"method", m.config.method.name}});
    } else {
      std::cout << "test top-1 " << top.top1 << ", top-5 " << top.top5 << ", ECE " << top.ece << " (15 bins) over "
                << top.count << " images\n";
    }
    return 0;
  }
  auto train_f = extract_features_sharded(*m.method, m.data.train, m.norm, m.device, a.eval_batch);
  auto test_f = extract_features_sharded(*m.method, m.data.test, m.norm, m.device, a.eval_batch);
  if (!lead) return 0;  // the kNN vote and the probe on cached features are cheap: rank 0 does them
  if (kind == Kind::kKnn) {
    if (a.knn_k < 1 || a.knn_t <= 0) throw InputError("invalid --k/--t: k must be >= 1 and t > 0");
    const double acc = knn_top1(train_f, m.data.train->labels(), test_f, m.data.test->labels(),
                                m.data.train->num_classes(), a.knn_k, a.knn_t);
    if (a.json)
      print_json({{"top1", acc}, {"k", a.knn_k}, {"t", a.knn_t}});
    else
      std::cout << "kNN top-1 " << acc << " (k " << a.knn_k << ", t " << a.knn_t << ")\n";
    return 0;
  }
  LinearProbeOptions lo;
  lo.epochs = a.lin_epochs;
  lo.lr = a.lin_lr;
  lo.weight_decay = a.lin_wd;
  lo.val_fraction = a.lin_val;
  auto r = linear_probe(train_f, m.data.train->labels(), test_f, m.data.test->labels(),
                        m.data.train->num_classes(), lo);
  if (a.json) {
    print_json({{"top1", r.top1},
                {"epoch", r.epoch},
                {"val_top1", r.val_top1},
                {"top1_last", r.top1_last},
                {"top1_best", r.top1_best},
                {"train_count", r.train_count},
                {"val_count", r.val_count},
                {"epochs", a.lin_epochs}});
  } else if (r.val_count > 0) {
    std::cout << "linear top-1 " << r.top1 << " at epoch " << r.epoch << " of " << a.lin_epochs
              << ", chosen on validation (" << r.val_count << " of the training images held out, top-1 "
              << r.val_top1 << "); last " << r.top1_last << "\n";
  } else {
    std::cout << "linear top-1 " << r.top1 << " (the last epoch; no validation)\n";
  }
  return 0;
}

CommandRegistration eval_reg([](CLI::App& app) -> std::function<int()> {
  auto a = std::make_shared<EvaluateArgs>();
  add_common(app.add_subcommand("eval", "test top-1/top-5 and ECE of a checkpoint's classifier (heads dropped)"),
             *a);
  return [a]() { return run(Kind::kEval, *a); };
});

CommandRegistration knn_reg([](CLI::App& app) -> std::function<int()> {
  auto a = std::make_shared<EvaluateArgs>();
  auto* knn = app.add_subcommand("knn", "weighted kNN accuracy of a checkpoint's backbone features");
  add_common(knn, *a);
  knn->add_option("--k", a->knn_k, "neighbours")->capture_default_str();
  knn->add_option("--t", a->knn_t, "temperature")->capture_default_str();
  return [a]() { return run(Kind::kKnn, *a); };
});

CommandRegistration linear_reg([](CLI::App& app) -> std::function<int()> {
  auto a = std::make_shared<EvaluateArgs>();
  auto* linear =
      app.add_subcommand("linear", "linear probe on the frozen backbone (pre-head features, eval mode)");
  add_common(linear, *a);
  linear->add_option("--epochs", a->lin_epochs, "probe epochs")->capture_default_str()->check(CLI::PositiveNumber);
  linear->add_option("--lr", a->lin_lr, "probe learning rate (standardised features)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  linear->add_option("--weight-decay", a->lin_wd, "probe weight decay")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  linear
      ->add_option("--val-fraction", a->lin_val,
                   "share of the training images held out to choose the probe's epoch (0: report the last)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  return [a]() { return run(Kind::kLinear, *a); };
});

}  // namespace
}  // namespace contrastive::cli
