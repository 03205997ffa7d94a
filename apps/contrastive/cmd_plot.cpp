// `contrastive plot`: training curves of one or more runs overlaid in one picture.
#include <iostream>

#include "commands.h"
#include "contrastive/common.h"
#include "contrastive/plot.h"

namespace contrastive::cli {
namespace {

struct PlotArgs {
  std::vector<std::string> runs;
  std::string out = "curves.png";
};

CommandRegistration reg([](CLI::App& app) -> std::function<int()> {
  auto args = std::make_shared<PlotArgs>();
  auto* cmd = app.add_subcommand("plot", "training curves (loss, lr, top-1, images/s) of run directories");
  cmd->add_option("runs", args->runs, "run directories (each with metrics.jsonl)")->required();
  cmd->add_option("--out", args->out, "PNG to write")->capture_default_str();
  return [args]() {
    if (!plot_runs(args->runs, args->out)) throw RunError("gnuplot is needed to draw " + args->out);
    std::cout << "wrote " << args->out << "\n";
    return 0;
  };
});

}  // namespace
}  // namespace contrastive::cli
