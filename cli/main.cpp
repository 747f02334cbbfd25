// cli/main.cpp — the `hibari` command: the subcommands (cli/commands.h) and the exit codes.
// Every hibari::Error becomes one line on stderr and exit code 1 (under mpirun: once for the job,
// see comm_report_error in parallel/comm.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <new>

#include "cli/commands.h"
#include "core/error.h"
#include "parallel/comm.h"

int main(int argc, char** argv) {
  CLI::App app{"hibari: build Japanese-English language models end to end"};
  app.require_subcommand(1);
  hibari::cli::add_train_commands(app);
  hibari::cli::add_data_commands(app);
  hibari::cli::add_tokenizer_commands(app);
  hibari::cli::add_convert_command(app);
  hibari::cli::add_supervise_command(app);
  hibari::cli::add_generate_command(app);
  hibari::cli::add_eval_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Under mpirun every rank parses the same arguments: the usage error (or --help) is rank 0's
    // to print, once.
    if (hibari::comm_launch_rank() > 0) return e.get_exit_code();
    return app.exit(e);
  } catch (const hibari::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "hibari: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "hibari: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "hibari: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
