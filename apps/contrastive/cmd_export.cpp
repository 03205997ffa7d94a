// `contrastive export`: the trained network as a state dict Python's torch.load opens (torchvision names), or as
// an ONNX model (docs/deploy.md).
#include <torch/torch.h>

#include <iostream>

#include "commands.h"
#include "contrastive/common.h"
#include "contrastive/export.h"
#include "contrastive/onnx_export.h"
#include "contrastive/train.h"

namespace contrastive::cli {
namespace {

struct ExportArgs {
  std::string checkpoint, out, format = "pt";
  bool backbone_only = false, with_classifier = false, bake_normalization = false, fold_bn = false;
};

CommandRegistration reg([](CLI::App& app) -> std::function<int()> {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand("export",
                                 "write the network as a PyTorch state dict (.pt + <out>.json) or an ONNX model");
  cmd->add_option("--checkpoint", args->checkpoint, "checkpoint file (RUN_DIR/best.ckpt or last.ckpt)")
      ->required();
  cmd->add_option("--out", args->out, "file to write, e.g. model.pt or model.onnx")->required();
  cmd->add_option("--format", args->format,
                  "pt (state dict + JSON) | onnx (features, and logits with --with-classifier)")
      ->capture_default_str()
      ->check(CLI::IsMember({"pt", "onnx"}));
  cmd->add_flag("--backbone-only", args->backbone_only, "pt: leave the classifier (fc) out");
  cmd->add_flag("--with-classifier", args->with_classifier,
                "onnx: add the classifier's logits as a second output");
  cmd->add_flag("--bake-normalization", args->bake_normalization,
                "onnx: normalise inside the graph (the input is then the image in [0, 1])");
  cmd->add_flag("--fold-bn", args->fold_bn,
                "onnx: fold BatchNorm into the convolutions (default: BatchNormalization nodes)");
  return [args]() {
    const bool onnx = args->format == "onnx";
    if (onnx && args->backbone_only)
      throw InputError(
          "--backbone-only is for --format pt; an ONNX export holds the backbone alone unless "
          "--with-classifier");
    if (!onnx && (args->with_classifier || args->bake_normalization || args->fold_bn))
      throw InputError("--with-classifier, --bake-normalization and --fold-bn are for --format onnx");
    if (onnx && !onnx_export_available()) export_onnx(LoadedModel{}, args->out);  // refuses with one line
    LoadedModel m = load_model(args->checkpoint, nullptr, "cpu");
    if (onnx) {
      export_onnx(m, args->out,
                  OnnxExportOptions()
                      .with_classifier(args->with_classifier)
                      .bake_normalization(args->bake_normalization)
                      .fold_batchnorm(args->fold_bn));
      std::cout << "exported " << m.config.method.name << " " << m.config.model.arch << " to " << args->out
                << " (ONNX, outputs: features" << (args->with_classifier ? ", logits" : "") << ")\n";
      return 0;
    }
    export_model(m, args->out, args->backbone_only);
    std::cout << "exported " << m.config.method.name << " " << m.config.model.arch << " to " << args->out << " (+ "
              << args->out << ".json)\n";
    return 0;
  };
});

}  // namespace
}  // namespace contrastive::cli
