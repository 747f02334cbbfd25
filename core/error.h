// core/error.h — the one error type of hibari.
// Code deep in the library throws `Error` with a message a user can act on (naming the file and the
// problem); only cli/ prints it and chooses the exit code.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace hibari {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "path: problem" — the shape of every error about a file.
[[noreturn]] inline void fail_file(std::string_view path, std::string_view problem) {
  throw Error(std::string(path) + ": " + std::string(problem));
}

[[noreturn]] inline void fail(std::string_view problem) { throw Error(std::string(problem)); }

inline void check(bool ok, std::string_view problem) {
  if (!ok) fail(problem);
}

}  // namespace hibari
