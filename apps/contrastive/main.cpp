// The `contrastive` command line (cli.h): parses flags and config, then calls the library. No training logic
// here. The executable's main (apps/main/main.cpp) only calls cli::run; an application that registers methods of
// its own links the same objects (contrastive::cli) and calls it after register_method.
#include <malloc.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "contrastive/cli.h"
#include "contrastive/common.h"
#include "contrastive/config.h"
#include "contrastive/dist.h"
#include "contrastive/eval.h"
#include "contrastive/platform.h"
#include "contrastive/registry.h"
#include "contrastive/train.h"

using namespace contrastive;

namespace contrastive::cli {
std::vector<CommandSetup>& command_registry() {
  static std::vector<CommandSetup> registry;
  return registry;
}
}  // namespace contrastive::cli

namespace {

// A value as --help shows it.
std::string value_text(const ConfigTarget& target) {
  return std::visit(
      [](auto* t) {
        using T = std::decay_t<decltype(*t)>;
        std::ostringstream ss;
        if constexpr (std::is_same_v<T, std::vector<double>>) {
          for (size_t i = 0; i < t->size(); ++i) ss << (i ? "," : "") << (*t)[i];
        } else if constexpr (std::is_same_v<T, bool>) {
          ss << (*t ? "on" : "off");
        } else if constexpr (std::is_same_v<T, std::string>) {
          ss << (t->empty() ? "''" : *t);
        } else {
          ss << *t;
        }
        return ss.str();
      },
      target);
}

// Registers every config key as a flag on `cmd`, bound to `flags`; after parsing, apply_flags copies the ones
// the user gave onto the real config (so YAML < flags, and untouched keys keep the YAML/default value). A
// method's options come from the registry; a flag that several methods share (--temperature) is one flag, and
// its help names each method with its default.
void add_config_flags(CLI::App& cmd, Config& flags) {
  auto keys = config_keys(flags);
  std::vector<std::string> order;
  std::map<std::string, std::pair<const ConfigKey*, std::string>> groups;  // flag -> first key, help
  for (const auto& key : keys) {
    const bool method_key = flags.method.options.find(key.section) != nullptr;
    auto it = groups.find(key.flag);
    if (it == groups.end()) {
      order.push_back(key.flag);
      std::string help = key.help;
      if (method_key) help += " [" + key.section + ": " + value_text(key.target);
      groups[key.flag] = {&key, help};
    } else if (method_key) {
      it->second.second += ", " + key.section + ": " + value_text(key.target);
    }
  }
  for (const auto& flag : order) {
    const auto& [key, help_text] = groups[flag];
    const bool method_key = flags.method.options.find(key->section) != nullptr;
    const std::string help = method_key ? help_text + "]" : help_text;
    const std::string name = "--" + flag;
    const std::string group = method_key ? "Method options ([method: default])" : "Config";
    std::visit(
        [&](auto* target) {
          using T = std::decay_t<decltype(*target)>;
          if constexpr (std::is_same_v<T, bool>) {
            cmd.add_flag(name, *target, help)->group(group);
          } else if constexpr (std::is_same_v<T, std::vector<double>>) {
            cmd.add_option(name, *target, help)->delimiter(',')->group(group);
          } else if (method_key) {
            cmd.add_option(name, *target, help)->group(group);
          } else {
            cmd.add_option(name, *target, help)->capture_default_str()->group(group);
          }
        },
        key->target);
  }
}

void apply_flags(const CLI::App& cmd, Config& flags, Config& config) {
  auto from = config_keys(flags);
  auto to = config_keys(config);
  std::map<std::string, const ConfigKey*> bound;  // flag -> the key its CLI option was bound to (the first)
  for (const auto& k : from) bound.emplace(k.flag, &k);
  std::map<std::string, std::vector<std::string>> method_flags;  // method flag given -> methods that have it
  for (size_t i = 0; i < from.size(); ++i) {
    if (cmd.count("--" + from[i].flag) == 0) continue;
    if (flags.method.options.find(from[i].section)) method_flags[from[i].flag].push_back(from[i].section);
    std::visit(
        [&](auto* src) {
          using T = std::decay_t<decltype(*src)>;
          // -1 marks "method default" inside the config; typed on the command line it is a mistake.
          if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>) {
            if (*src < 0 && from[i].help.find("(-1:") != std::string::npos)
              throw InputError("invalid value for --" + from[i].flag + ": " + std::to_string(*src) +
                               " (must not be negative; omit the flag for the method default)");
          }
          *std::get<std::decay_t<decltype(src)>>(to[i].target) = *src;
        },
        bound.at(from[i].flag)->target);
  }
  // A method option given for a run of another method would silently do nothing: say so instead.
  for (const auto& [flag, methods] : method_flags) {
    if (std::find(methods.begin(), methods.end(), config.method.name) != methods.end()) continue;
    std::string list;
    for (const auto& m : methods) list += (list.empty() ? "" : ", ") + m;
    throw InputError("--" + flag + " is an option of --method " + list + ", not of " + config.method.name);
  }
}

int run_train(CLI::App& cmd, Config& flags, const std::string& config_file, const std::string& resume) {
  Config config;
  if (!config_file.empty()) load_config_file(config_file, config);
  // Resuming: the run's own resolved config is the base; flags such as --epochs or --threads override it.
  if (!resume.empty() && std::filesystem::exists(resume + "/config.yaml"))
    load_config_file(resume + "/config.yaml", config);
  apply_flags(cmd, flags, config);
  install_stop_handlers();
  TrainResult r = run_training(config, resume);
  if (r.already_complete) return 0;
  if (r.interrupted && r.requeue) {
    log_info("run pre-empted (SIGTERM/SIGUSR1); exit " + std::to_string(kRequeueExitCode) +
             " asks for a requeue; the same command (or --resume " + r.run_dir + ") continues it");
    return kRequeueExitCode;
  }
  if (r.interrupted) {
    log_info("run interrupted; continue with: contrastive train --resume " + r.run_dir +
             " (or the same command again)");
    return 130;
  }
  std::ostringstream done;
  done << "finished " << r.epochs_done << " epochs; run directory " << r.run_dir;
  if (r.best_test_top1 >= 0)
    done << "; test top-1 last " << std::fixed << std::setprecision(4) << r.last_test_top1 << ", best "
         << r.best_test_top1;
  if (r.last_knn_top1 >= 0) done << "; kNN top-1 " << std::fixed << std::setprecision(4) << r.last_knn_top1;
  log_info(done.str());
  return 0;
}

}  // namespace

// glibc malloc: keep freed activation-sized blocks in the process. By default a training step's large tensors
// (tens of MB) are mmap'd or trimmed back to the kernel when freed, so the next step page-faults and zeroes them
// again: measured on `bench --method cds --width 16 --steps 6`, 0.37-1.1 M minor faults per run, varying run to
// run; with these settings 0.31-0.35 M (the first touch of the peak RSS), and CDS went from 0.85x to 1.13x the
// Python reference's images/s. MALLOC_MMAP_THRESHOLD_ / _TRIM_THRESHOLD_ / _TOP_PAD_ in the environment win.
static void tune_malloc() {
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, -1);        // -1: never trim (mallopt(3))
  if (!std::getenv("MALLOC_TOP_PAD_")) mallopt(M_TOP_PAD, 0);
}

int contrastive::cli::run(int argc, char** argv) {
  tune_malloc();
  CLI::App app{
      "contrastive: contrastive representation learning (methods: " + method_registry().names_joined(", ") + ")"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "print the version, the LibTorch build and the CPU, then exit");

  // train
  Config flags;
  std::string config_file, resume;
  auto* train = app.add_subcommand("train", "train a model (default: CDS on Fashion-MNIST)");
  train->add_option("--config", config_file, "YAML config (flags override it)")->check(CLI::ExistingFile);
  train->add_option("--resume", resume, "continue the run in this directory from its last.ckpt");
  add_config_flags(*train, flags);

  // Subcommands registered by the other cmd_*.cpp files.
  std::vector<std::pair<CLI::App*, std::function<int()>>> extra;
  for (auto& setup : cli::command_registry()) {
    const size_t before = app.get_subcommands({}).size();
    auto run = setup(app);
    extra.emplace_back(app.get_subcommands({}).at(before), std::move(run));
  }

  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      const int code = app.exit(e);
      return code == 0 ? 0 : 2;
    }
    if (show_version) {
      std::cout << describe_build(build_info()) << "\nCPU: " << describe_cpu(host_cpu()) << std::endl;
      return 0;
    }
    if (app.get_subcommands().empty()) {
      std::cerr << "contrastive: error: a command is required (train, eval, knn, linear, bench, ...; see --help)"
                << std::endl;
      return 2;
    }
    if (*train) return run_train(*train, flags, config_file, resume);
    for (auto& [cmd, run] : extra)
      if (*cmd) return run();

    return 2;  // unreachable: every subcommand returned above
  } catch (const InputError& e) {
    std::cerr << "contrastive: error: " << e.what() << std::endl;
    return 2;
  } catch (const RunError& e) {
    std::cerr << "contrastive: error: " << e.what() << std::endl;
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "contrastive: internal error: " << e.what_without_backtrace() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "contrastive: error: " << e.what() << std::endl;
    return 1;
  }
}
