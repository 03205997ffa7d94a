// Training with the library's Trainer and a callback of your own, without the CLI: a Config -> data ->
// ViewGenerator -> a method -> Trainer (its train_step, schedule, NaN policy and checkpoints) with the kNN
// monitor and a callback that records the loss of every step. Trains SimCLR on a slice of Fashion-MNIST.
//
//   trainer_callbacks [images (default 512)] [epochs (default 2)] [run directory (default: none, nothing written)]
//
// tests/consumer builds and runs it against the installed package (ctest's InstallConsumer); docs/architecture.md
// ("The trainer") describes the hooks.
#include <contrastive/contrastive.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>

namespace {

// Counts steps and keeps each step's loss; adds the epoch's worst step loss to the epoch's record (and so to
// metrics.jsonl when the trainer has a run directory).
class StepLossCallback : public contrastive::TrainerCallback {
 public:
  void on_epoch_begin(contrastive::Trainer& /*trainer*/, int64_t /*epoch*/) override { worst_ = 0; }
  void on_step_end(contrastive::Trainer& /*trainer*/, const contrastive::StepContext& /*ctx*/,
                   const contrastive::StepOutcome& step) override {
    if (step.skipped) return;
    losses.push_back(step.loss);
    worst_ = std::max(worst_, step.loss);
  }
  void on_epoch_end(contrastive::Trainer& /*trainer*/, contrastive::EpochRecord& record) override {
    record.values["worst_step_loss"] = worst_;
  }
  std::vector<double> losses;

 private:
  double worst_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace contrastive;
  const int64_t images = argc > 1 ? std::atoll(argv[1]) : 512, epochs = argc > 2 ? std::atoll(argv[2]) : 2;
  const std::string out = argc > 3 ? argv[3] : "";
  configure_threads(0);  // every core (LibTorch on Debian would use one)
  try {
    // SimCLR's typed options and the backbone give the run's Config; the rest of it is set by field.
    Config config = method_config(SimCLROptions().temperature(0.2), BackboneOptions().width(8));
    config.data.dataset = "fashion-mnist";
    config.data.train_subset = images;
    config.data.test_subset = images;
    config.train.batch_size = 64;
    config.train.epochs = epochs;
    // The front door, once: the method's defaults, bf16 / channels-last where this CPU gains, validation.
    const torch::Device device = resolve_device("cpu");
    config = resolve_config(config, {1, speed_context(device)}).config;

    DataSplits data = load_data(config);
    auto views = make_config_view_generator(config, *data.train);
    const Normalization norm = data_normalization(config, data.train->channels());
    Trainer trainer(config, make_method(method_spec(config, *data.train)), device);
    trainer.set_view_generator(views);
    if (!out.empty()) trainer.set_run_directory(std::make_shared<RunDirectory>(out));
    if (auto* dir = trainer.run_directory()) dir->open(config, 0);
    trainer.add_callback(std::make_shared<KnnMonitorCallback>(data.train, data.test, norm, /*every=*/1, 20, 0.1));
    auto steps = std::make_shared<StepLossCallback>();
    trainer.add_callback(steps);

    LoaderOptions lo;
    lo.batch_size = config.train.batch_size;
    lo.drop_last = true;
    lo.seed = static_cast<uint64_t>(config.train.seed);
    Loader loader(data.train, lo, [&](Batch& b) {
      b.views = (*views)(b.images, b.indices, mix_seed(lo.seed, b.epoch, b.step, kViewSeedTag), device);
    });
    const TrainResult result = trainer.fit(loader);

    const bool ok = result.epochs_done == epochs && !steps->losses.empty() &&
                    std::isfinite(steps->losses.front()) && std::isfinite(steps->losses.back()) &&
                    result.last_knn_top1 > 0;
    std::cout << "trainer_callbacks: " << result.epochs_done << " epochs, " << steps->losses.size()
              << " steps, loss " << steps->losses.front() << " -> " << steps->losses.back() << ", kNN top-1 "
              << result.last_knn_top1 << (ok ? " ok" : " FAILED") << std::endl;
    return ok ? 0 : 1;
  } catch (const InputError& e) {
    std::cerr << "trainer_callbacks: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "trainer_callbacks: " << e.what() << std::endl;
    return 1;
  }
}
