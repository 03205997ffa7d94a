// Subcommand registry of the CLI: each apps/contrastive/cmd_*.cpp registers its subcommands with a static
// CommandRegistration, so adding a command never touches main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace contrastive::cli {

// Adds its subcommand (with options bound to state it owns) to `app` and returns the function that runs it.
using CommandSetup = std::function<std::function<int()>(CLI::App& app)>;

std::vector<CommandSetup>& command_registry();

struct CommandRegistration {
  explicit CommandRegistration(CommandSetup setup) { command_registry().push_back(std::move(setup)); }
};

}  // namespace contrastive::cli
