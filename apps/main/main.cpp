// The `contrastive` executable: the command line of apps/contrastive (cli.h).
#include "contrastive/cli.h"

int main(int argc, char** argv) { return contrastive::cli::run(argc, argv); }
