// Pictures drawn with gnuplot (an external program, looked up on PATH): training curves of runs and labelled
// 2-D scatter plots (t-SNE). Data and script go to a temp directory; the PNG is written to a temp name and
// renamed, so a failed plot never leaves a half-written picture behind.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace contrastive {

// Full path of gnuplot on PATH, "" when it is not installed.
std::string find_gnuplot();

// Training curves against epoch in four panels: loss, learning rate, test top-1 / clean training top-1 / kNN
// top-1 (whichever were recorded), images/s. Several runs are overlaid, each in its own colour, the legend naming
// the run directory. A run without metrics.jsonl (or with no records) -> InputError naming it; gnuplot failing ->
// RunError. Returns false, after a warning, when gnuplot is missing (no picture).
bool plot_runs(const std::vector<std::string>& run_dirs, const std::string& out_png);
// RUN_DIR/curves.png of one run.
bool plot_run_curves(const std::string& run_dir);
// For the trainer after each epoch: like plot_run_curves, but any failure is only a warning (a missing gnuplot
// is reported once per process) -- a picture must never stop training.
void plot_run_curves_or_warn(const std::string& run_dir);

// Scatter of points [N,2] coloured by int64 labels [N], legend with the class names. Returns false, after a
// warning, when gnuplot is missing; RunError when it fails.
bool plot_scatter(const torch::Tensor& points, const torch::Tensor& labels,
                  const std::vector<std::string>& class_names, const std::string& out_png,
                  const std::string& title);

}  // namespace contrastive
