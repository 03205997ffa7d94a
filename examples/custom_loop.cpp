// A training loop of your own over the library's stages, without the CLI or the trainer:
// Dataset -> Loader -> ViewGenerator -> a method built from its typed options -> a torch optimizer. Trains SimCLR
// for a few steps on a slice of Fashion-MNIST and prints the loss.
//
//   custom_loop [images (default 512)] [steps (default 6)]
//
// tests/consumer builds and runs it against the installed package (ctest's InstallConsumer).
#include <contrastive/contrastive.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <tuple>

int main(int argc, char** argv) {
  using namespace contrastive;
  const int64_t images = argc > 1 ? std::atoll(argv[1]) : 512, steps = argc > 2 ? std::atoll(argv[2]) : 6;
  configure_threads(0);  // every core (LibTorch on Debian would use one)
  try {
    // Data: Fashion-MNIST from its default location, the first `images` training images.
    DataOptions data;
    data.dataset = "fashion-mnist";
    auto train = take_first(load_dataset(data).train, images);

    // Views: SimCLR's CIFAR augmentation, two views per image, normalised with the dataset's statistics.
    AugmentOptions augment;
    augment.preset = "simclr-cifar";
    std::tie(augment.mean, augment.std) = default_normalization(data.dataset, train->channels());
    auto views = make_view_generator(augment, train->channels(), train->height(), train->width());

    // The method: SimCLR at width 8 with its temperature set, built from its typed options (every option:
    // contrastive/methods/simclr.h, or `contrastive methods --json`).
    MethodPtr method = make_method(SimCLROptions().temperature(0.2), BackboneOptions().width(8), *train);
    method->train();

    // Any torch optimizer over the trainable parameters.
    std::vector<torch::Tensor> params;
    for (auto& p : method->parameters())
      if (p.requires_grad()) params.push_back(p);
    torch::optim::SGD optimizer(params, torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-4));

    LoaderOptions lo;
    lo.batch_size = 64;
    lo.drop_last = true;
    Loader loader(train, lo);
    StepContext ctx;
    ctx.total_steps = steps;
    double first = 0, last = 0;
    for (int64_t epoch = 0; ctx.global_step < steps; ++epoch) {
      loader.start_epoch(epoch);
      while (auto batch = loader.next()) {
        if (ctx.global_step >= steps) break;
        ctx.epoch = epoch;
        ctx.seed = static_cast<uint64_t>(1000 + ctx.global_step);
        auto v = (*views)(batch->images, batch->indices, ctx.seed, torch::kCPU);
        LossTerms terms = method->loss(v, batch->labels, batch->indices, ctx);
        auto loss = terms.total();
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        method->after_step(ctx);
        last = loss.item<double>();
        if (ctx.global_step == 0) first = last;
        std::cout << "step " << ctx.global_step << " loss " << last << std::endl;
        ++ctx.global_step;
      }
    }
    const bool ok = std::isfinite(first) && std::isfinite(last);
    std::cout << "custom_loop: " << steps << " steps, loss " << first << " -> " << last << (ok ? " ok" : " FAILED")
              << std::endl;
    return ok ? 0 : 1;
  } catch (const InputError& e) {
    std::cerr << "custom_loop: " << e.what() << std::endl;
    return 2;
  }
}
