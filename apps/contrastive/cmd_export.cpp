// `contrastive export`: the trained network as a state dict Python's torch.load opens (torchvision names).
#include <torch/torch.h>

#include <iostream>

#include "commands.h"
#include "contrastive/export.h"
#include "contrastive/train.h"

namespace contrastive::cli {
namespace {

struct ExportArgs {
  std::string checkpoint, out;
  bool backbone_only = false;
};

CommandRegistration reg([](CLI::App& app) -> std::function<int()> {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd =
      app.add_subcommand("export", "write the network as a PyTorch state dict (.pt) + <out>.json metadata");
  cmd->add_option("--checkpoint", args->checkpoint, "checkpoint file (RUN_DIR/best.ckpt or last.ckpt)")
      ->required();
  cmd->add_option("--out", args->out, "state dict to write, e.g. model.pt")->required();
  cmd->add_flag("--backbone-only", args->backbone_only, "leave the classifier (fc) out");
  return [args]() {
    LoadedModel m = load_model(args->checkpoint, nullptr, "cpu");
    export_model(m, args->out, args->backbone_only);
    std::cout << "exported " << m.config.method.name << " " << m.config.model.arch << " to " << args->out << " (+ "
              << args->out << ".json)\n";
    return 0;
  };
});

}  // namespace
}  // namespace contrastive::cli
