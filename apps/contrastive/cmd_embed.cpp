// `contrastive embed`: backbone features of a split as .npy/.csv, optionally a t-SNE picture of them and the
// files of TensorBoard's embedding projector.
#include <torch/torch.h>

#include <iostream>
#include <optional>

#include "commands.h"
#include "contrastive/common.h"
#include "contrastive/eval.h"
#include "contrastive/export.h"
#include "contrastive/io.h"
#include "contrastive/plot.h"
#include "contrastive/tensorboard.h"
#include "contrastive/train.h"
#include "contrastive/tsne.h"

namespace contrastive::cli {
namespace {

struct EmbedArgs {
  std::string checkpoint, split = "test", out, tsne_png, projector, device = "auto", data, layout = "auto";
  double perplexity = 30;
  int64_t iterations = 1000, max_points = 2000, seed = 0, threads = 0, batch_size = 512;
};

CommandRegistration reg([](CLI::App& app) -> std::function<int()> {
  auto a = std::make_shared<EmbedArgs>();
  auto* cmd =
      app.add_subcommand("embed", "pre-head backbone features of a split as PREFIX.npy/.csv (+ t-SNE plot)");
  cmd->add_option("--checkpoint", a->checkpoint, "checkpoint file (RUN_DIR/best.ckpt or last.ckpt)")->required();
  cmd->add_option("--split", a->split, "test | train")
      ->capture_default_str()
      ->check(CLI::IsMember({"test", "train"}));
  cmd->add_option("--data", a->data,
                  "embed every image of this folder instead (any layout: unlabelled, DIR/<class>/, "
                  "DIR/train|test/<class>/ with --split)");
  cmd->add_option("--layout", a->layout, "layout of --data: auto | unlabelled | classes | train-test")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "unlabelled", "classes", "train-test"}));
  cmd->add_option("--out", a->out, "prefix of PREFIX.npy, PREFIX_labels.npy, PREFIX.csv")->required();
  cmd->add_option("--tsne", a->tsne_png, "also draw a t-SNE scatter of the features to this PNG");
  cmd->add_option("--projector", a->projector,
                  "also write TensorBoard projector files into this directory (tensorboard --logdir DIR)");
  cmd->add_option("--perplexity", a->perplexity, "t-SNE perplexity")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6));
  cmd->add_option("--iterations", a->iterations, "t-SNE iterations")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-points", a->max_points, "t-SNE on at most this many images (stratified sample)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "t-SNE seed (sample and initialisation)")->capture_default_str();
  cmd->add_option("--device", a->device, "auto | cpu | cuda")->capture_default_str();
  cmd->add_option("--threads", a->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size, "feature extraction batch size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  return [a]() {
    configure_threads(static_cast<int>(a->threads));
    std::optional<DataConfig> folder;
    if (!a->data.empty()) folder = folder_data_like(Checkpoint::read(a->checkpoint).config(), a->data, a->layout);
    LoadedModel m = load_model(a->checkpoint, folder ? &*folder : nullptr, a->device);
    // A folder without a test split of its own is embedded whole, as its "train" split.
    const bool whole = folder && !m.data.test;
    if (!whole && a->split == "test" && !m.data.test)
      throw InputError(m.config.data.path + " has no test split; use --split train");
    const Dataset& data = whole || a->split == "train" ? *m.data.train : *m.data.test;
    auto features = extract_features(*m.method, data, m.norm, m.device, a->batch_size);
    auto labels = data.labels();
    std::vector<std::string> names;
    for (int64_t i = 0; i < data.size(); ++i) names.push_back(data.item_name(i));
    write_embedding_files(a->out, features, labels, names, data.labelled());
    std::cout << "wrote " << a->out << ".npy [" << features.size(0) << ", " << features.size(1) << "], "
              << (data.labelled() ? a->out + "_labels.npy, " : "") << a->out << ".csv\n";
    for (const auto& f : data.skipped_files()) log_warn("not embedded (unreadable): " + f);
    if (!a->projector.empty()) {
      write_projector(a->projector, features, names, data.labelled() ? labels : torch::Tensor(),
                      data.class_names());
      std::cout << "wrote the projector's files to " << a->projector << " (tensorboard --logdir " << a->projector
                << ")\n";
    }
    if (a->tsne_png.empty()) return 0;

    auto idx = stratified_subsample(labels, a->max_points, static_cast<uint64_t>(a->seed));
    auto x = features.index_select(0, idx);
    auto y = labels.index_select(0, idx);
    TsneOptions o;
    o.perplexity = a->perplexity;
    o.iterations = a->iterations;
    o.seed = static_cast<uint64_t>(a->seed);
    log_info("t-SNE of " + std::to_string(x.size(0)) + " of " + std::to_string(features.size(0)) +
             " images (perplexity " + std::to_string(a->perplexity) + ", " + std::to_string(a->iterations) +
             " iterations)");
    TsneResult r = tsne(x, o);
    // The coordinates too, so the picture can be redrawn with other tools: index into the split, label, x, y.
    write_npy(a->out + "_tsne.npy", r.embedding);
    write_npy(a->out + "_tsne_indices.npy", idx);
    const std::string title = m.config.method.name + " " + m.config.model.arch + ", " + m.config.data.dataset +
                              " " + a->split + " (t-SNE, perplexity " +
                              std::to_string(static_cast<int>(a->perplexity)) + ", KL " +
                              std::to_string(r.kl).substr(0, 5) + ")";
    const std::vector<std::string> legend =
        data.labelled() ? data.class_names() : std::vector<std::string>{"images"};
    if (plot_scatter(r.embedding, y, legend, a->tsne_png, title)) std::cout << "wrote " << a->tsne_png << "\n";
    return 0;
  };
});

}  // namespace
}  // namespace contrastive::cli
