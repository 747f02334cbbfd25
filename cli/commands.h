// cli/commands.h — each cli/*_command(s).cpp file adds its subcommands to the `hibari` app; a
// subcommand's callback does the work (parsing flags and calling the layers below, nothing more).
// A hibari::Error thrown by a callback becomes one line on stderr and exit code 1 (cli/main.cpp).
#pragma once

namespace CLI {
class App;
}

namespace hibari::cli {

void add_train_commands(CLI::App& app);      // train, config            (train_commands.cpp)
void add_data_commands(CLI::App& app);       // data tokenize            (data_commands.cpp)
void add_tokenizer_commands(CLI::App& app);  // tokenizer encode|decode  (tokenizer_commands.cpp)
// tokenizer extend, added to the `tokenizer` subcommand (tokenizer_extend_command.cpp).
void add_tokenizer_extend_command(CLI::App& tokenizer);
void add_convert_command(CLI::App& app);    // convert                  (convert_command.cpp)
void add_supervise_command(CLI::App& app);  // supervise (supervise_command.cpp)
void add_generate_command(CLI::App& app);   // generate (generate_command.cpp)
void add_eval_command(CLI::App& app);       // eval (eval_command.cpp)

}  // namespace hibari::cli
