// The `contrastive` command line as a function, for an application that registers methods of its own
// (register_method, registry.h) and then offers the whole CLI with them: their flags, --help, YAML sections and
// `contrastive methods` included (examples/dcl). Not part of the library: link the CLI's objects,
// target contrastive::cli of the installed package.
#pragma once

namespace contrastive::cli {

// Runs the command line: the exit status of `contrastive` (0, 1 for a failed run, 2 for a user mistake).
int run(int argc, char** argv);

}  // namespace contrastive::cli
