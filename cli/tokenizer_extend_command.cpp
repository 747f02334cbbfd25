// cli/tokenizer_extend_command.cpp — `hibari tokenizer extend`: not built yet.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace hibari::cli {

void add_tokenizer_extend_command(CLI::App&) {}

}  // namespace hibari::cli
