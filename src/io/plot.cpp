#include "contrastive/plot.h"

#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "contrastive/common.h"

namespace fs = std::filesystem;

namespace contrastive {

namespace {

// Single-quoted string for /bin/sh.
std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Single-quoted string for gnuplot (a quote inside is doubled; no backslash escapes in single quotes).
std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A private scratch directory removed when the plot is done (success or not).
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("contrastive-plot-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Runs the script; the picture goes to a temp name next to `out_png` and is renamed over it on success.
void run_gnuplot(const std::string& gnuplot, const ScratchDir& dir, const std::string& script_body,
                 const std::string& out_png, const std::string& size = "1200,800") {
  const std::string tmp_png = out_png + ".tmp.png";
  const std::string script_path = (dir.path / "plot.gp").string();
  {
    std::ofstream s(script_path);
    s << "set terminal pngcairo noenhanced size " << size << " font ',10'\n";
    s << "set output " << gp_quote(tmp_png) << "\n";
    s << script_body;
    s << "unset output\n";
    if (!s) throw RunError(script_path + ": cannot write the gnuplot script");
  }
  const std::string log = (dir.path / "gnuplot.log").string();
  const int rc =
      std::system((sh_quote(gnuplot) + " " + sh_quote(script_path) + " >" + sh_quote(log) + " 2>&1").c_str());
  std::error_code ec;
  if (rc != 0 || !fs::exists(tmp_png) || fs::file_size(tmp_png, ec) == 0) {
    fs::remove(tmp_png, ec);
    std::ifstream in(log);
    std::string first, line;
    while (std::getline(in, line))
      if (line.find_first_not_of(" ^") != std::string::npos) first += (first.empty() ? "" : " | ") + line;
    if (first.size() > 400) first = first.substr(0, 400) + "...";
    throw RunError(out_png + ": gnuplot failed (" + (first.empty() ? "exit " + std::to_string(rc) : first) + ")");
  }
  fs::rename(tmp_png, out_png, ec);
  if (ec) throw RunError(out_png + ": cannot rename the picture into place (" + ec.message() + ")");
}

bool gnuplot_or_warn(std::string& gnuplot, const std::string& what) {
  gnuplot = find_gnuplot();
  if (gnuplot.empty()) log_warn("gnuplot not found on PATH: " + what + " not drawn (install gnuplot-nox)");
  return !gnuplot.empty();
}

struct RunCurves {
  std::string name;
  std::string data_file;
  bool has_test = false, has_knn = false, has_train = false;
};

// The run directory's own name (what a user recognises in a legend), also for "runs/x/".
std::string run_name(const std::string& dir) {
  fs::path p(dir);
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

std::string value_or_missing(const nlohmann::json& rec, const char* key) {
  if (!rec.contains(key) || !rec[key].is_number()) return "?";
  std::ostringstream s;
  s.precision(10);
  s << rec[key].get<double>();
  return s.str();
}

RunCurves write_run_data(const std::string& run_dir, const fs::path& data_file) {
  const std::string metrics = (fs::path(run_dir) / "metrics.jsonl").string();
  std::ifstream in(metrics);
  if (!in) throw InputError(run_dir + ": no metrics.jsonl (not a run directory, or no epoch finished yet)");
  RunCurves run;
  run.name = run_name(run_dir);
  run.data_file = data_file.string();
  std::ofstream out(data_file);
  out << "# epoch loss lr test_top1 knn_top1 images_per_s train_clean_top1\n";
  std::string line;
  int64_t records = 0, line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json rec;
    try {
      rec = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      // A torn last line (killed while appending) is expected; anything else is reported by its position.
      log_warn(metrics + ":" + std::to_string(line_no) + ": not a JSON record, skipped");
      continue;
    }
    if (!rec.contains("epoch")) continue;
    run.has_test |= rec.contains("test_top1");
    run.has_knn |= rec.contains("knn_top1");
    run.has_train |= rec.contains("train_clean_top1");
    out << value_or_missing(rec, "epoch") << " " << value_or_missing(rec, "loss") << " "
        << value_or_missing(rec, "lr") << " " << value_or_missing(rec, "test_top1") << " "
        << value_or_missing(rec, "knn_top1") << " " << value_or_missing(rec, "images_per_s") << " "
        << value_or_missing(rec, "train_clean_top1") << "\n";
    ++records;
  }
  if (records == 0) throw InputError(metrics + ": no epoch records to plot");
  if (!out) throw RunError(data_file.string() + ": cannot write plot data");
  return run;
}

// Ten distinct colours (the common "category10" palette) so that 10-class data sets get one colour per class.
const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// Beyond ten classes the colours repeat with another marker: filled circle, square, triangle, diamond, pentagon.
const int kPointTypes[] = {7, 5, 9, 13, 15};

std::string colour(size_t i) { return std::string("rgb '") + kColours[i % 10] + "'"; }

}  // namespace

std::string find_gnuplot() {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/gnuplot";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

bool plot_runs(const std::vector<std::string>& run_dirs, const std::string& out_png) {
  if (run_dirs.empty()) throw InputError("no run directory to plot");
  ScratchDir dir;
  std::vector<RunCurves> runs;  // read every run first: a bad one is an InputError even without gnuplot
  for (size_t i = 0; i < run_dirs.size(); ++i)
    runs.push_back(write_run_data(run_dirs[i], dir.path / ("run" + std::to_string(i) + ".dat")));
  std::string gnuplot;
  if (!gnuplot_or_warn(gnuplot, out_png)) return false;

  // One panel per quantity; `cols` are data columns, `suffix` tells the curves of one run apart.
  struct Series {
    int column;
    std::string suffix;
    bool RunCurves::*present;  // nullptr: always recorded
  };
  struct Panel {
    std::string title, ylabel;
    std::vector<Series> series;
    bool log_y = false;
  };
  const std::vector<Panel> panels = {
      {"training loss", "loss", {{2, "", nullptr}}},
      {"learning rate", "lr", {{3, "", nullptr}}},
      // Clean training top-1 next to test top-1: the gap between the two is the overfitting.
      {"top-1 accuracy",
       "top-1",
       {{4, " test", &RunCurves::has_test},
        {7, " train (clean)", &RunCurves::has_train},
        {5, " kNN", &RunCurves::has_knn}}},
      {"throughput", "images/s", {{6, "", nullptr}}},
  };
  std::ostringstream s;
  s << "set datafile missing '?'\n";
  s << "set multiplot layout 2,2 title " << gp_quote(runs.size() == 1 ? runs[0].name : "training curves") << "\n";
  // The legend below each panel: inside, it would hide curves wherever they happen to run.
  s << "set grid\nset key below horizontal box\nset xlabel 'epoch'\n";
  // A margin so that the first and last points are not drawn on the frame.
  s << "set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05\n";
  for (const auto& panel : panels) {
    s << "set title " << gp_quote(panel.title) << "\nset ylabel " << gp_quote(panel.ylabel) << "\n";
    std::vector<std::string> curves;
    for (size_t r = 0; r < runs.size(); ++r) {
      for (size_t k = 0; k < panel.series.size(); ++k) {
        const auto& ser = panel.series[k];
        if (ser.present && !(runs[r].*ser.present)) continue;
        std::ostringstream c;
        c << gp_quote(runs[r].data_file) << " using 1:" << ser.column << " with linespoints lw 2 pt 7 ps 0.6 lc "
          << colour(r) << " dt " << k + 1 << " title " << gp_quote(runs[r].name + ser.suffix);
        curves.push_back(c.str());
      }
    }
    if (curves.empty()) {  // e.g. no classifier and the kNN monitor off: say so instead of an empty frame
      s << "set label 1 'not recorded' at graph 0.5,0.5 center\nset yrange [0:1]\nplot 2 notitle\n"
        << "unset label 1\nset autoscale y\n";
      continue;
    }
    s << "plot ";
    for (size_t i = 0; i < curves.size(); ++i) s << (i ? ", \\\n     " : "") << curves[i];
    s << "\n";
  }
  s << "unset multiplot\n";
  run_gnuplot(gnuplot, dir, s.str(), out_png);
  return true;
}

bool plot_run_curves(const std::string& run_dir) {
  return plot_runs({run_dir}, (fs::path(run_dir) / "curves.png").string());
}

void plot_run_curves_or_warn(const std::string& run_dir) {
  static std::atomic<bool> warned_missing{false};
  if (find_gnuplot().empty()) {
    if (!warned_missing.exchange(true))
      log_warn("gnuplot not found on PATH: " + run_dir + "/curves.png will not be drawn (install gnuplot-nox)");
    return;
  }
  try {
    plot_run_curves(run_dir);
  } catch (const std::exception& e) {
    log_warn(std::string("training curves not drawn: ") + e.what());
  }
}

bool plot_scatter(const torch::Tensor& points, const torch::Tensor& labels,
                  const std::vector<std::string>& class_names, const std::string& out_png,
                  const std::string& title) {
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 2 && labels.size(0) == points.size(0),
              "plot_scatter: points [N,2] and labels [N] expected");
  std::string gnuplot;
  if (!gnuplot_or_warn(gnuplot, out_png)) return false;
  ScratchDir dir;
  auto p = points.to(torch::kCPU, torch::kDouble).contiguous();
  auto y = labels.to(torch::kCPU, torch::kLong).contiguous();
  const auto* pp = p.data_ptr<double>();
  const auto* yp = y.data_ptr<int64_t>();
  const int64_t n = p.size(0);
  int64_t classes = static_cast<int64_t>(class_names.size());
  for (int64_t i = 0; i < n; ++i) classes = std::max(classes, yp[i] + 1);
  // One data block per class (blocks are separated by two blank lines and addressed with `index`).
  const std::string data = (dir.path / "points.dat").string();
  std::vector<int64_t> count(classes, 0);
  {
    std::ofstream out(data);
    out.precision(8);
    for (int64_t c = 0; c < classes; ++c) {
      out << "# class " << c << "\n";
      for (int64_t i = 0; i < n; ++i)
        if (yp[i] == c) {
          out << pp[2 * i] << " " << pp[2 * i + 1] << "\n";
          ++count[c];
        }
      if (count[c] == 0)
        out << "?"
            << " "
            << "?"
            << "\n";  // keeps the block numbering aligned
      out << "\n\n";
    }
  }
  std::ostringstream s;
  s << "set datafile missing '?'\n";
  s << "set title " << gp_quote(title) << "\n";
  s << "set key outside right top box\nset size ratio -1\nunset xtics\nunset ytics\n";
  s << "set offsets graph 0.02, graph 0.02, graph 0.02, graph 0.02\n";
  s << "plot ";
  bool first = true;
  for (int64_t c = 0; c < classes; ++c) {
    if (count[c] == 0) continue;
    const std::string name = c < static_cast<int64_t>(class_names.size()) ? class_names[c] : std::to_string(c);
    s << (first ? "" : ", \\\n     ") << gp_quote(data) << " index " << c << " using 1:2 with points pt "
      << kPointTypes[(c / 10) % 5] << " ps 0.7 lc " << colour(c) << " title " << gp_quote(name);
    first = false;
  }
  if (first) s << "2 notitle";
  s << "\n";
  // Nearly square: t-SNE axes are drawn to the same scale, and the legend sits on the right.
  run_gnuplot(gnuplot, dir, s.str(), out_png, "1000,800");
  return true;
}

}  // namespace contrastive
