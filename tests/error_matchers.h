// tests/error_matchers.h — the message of the hibari::Error a call throws, and a check that an
// error message is one line that names its file: shared by the tests of errors from file readers.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace hibari::test {

// The message of the hibari::Error that f throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The error starts with `path: `, holds `phrase` and is one line.
inline testing::AssertionResult one_line_error(const std::string& msg, const std::string& path,
                                               const std::string& phrase) {
  if (msg.rfind(path + ": ", 0) != 0 || msg.find(phrase) == std::string::npos ||
      msg.find('\n') != std::string::npos) {
    return testing::AssertionFailure()
           << "expected '" << path << ": ..." << phrase << "...', got: " << msg;
  }
  return testing::AssertionSuccess();
}

}  // namespace hibari::test
