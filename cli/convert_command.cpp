// cli/convert_command.cpp — `hibari convert` (Hugging Face <-> native checkpoints): not built yet.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace hibari::cli {

void add_convert_command(CLI::App&) {}

}  // namespace hibari::cli
