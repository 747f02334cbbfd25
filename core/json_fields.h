// core/json_fields.h — the one way hibari reads JSON files: parse_json_file turns every nlohmann
// exception (parse_error, type_error, out_of_range such as 1e309, ...) into a one-line Error naming
// the file, and the json_get_* helpers read a field with its type checked, so a wrong type is an
// error naming the file and the key instead of a raw "[json.exception.type_error.302]", a
// truncated 1.5 or a wrapped 2^40.  Header-only: used by the layers that link nlohmann_json.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"

namespace hibari {

// nlohmann's message without its "[json.exception.parse_error.101] " prefix, on one line.
inline std::string json_exception_text(const nlohmann::json::exception& e) {
  std::string msg = e.what();
  if (msg.rfind("[json.exception.", 0) == 0) {
    size_t bracket = msg.find("] ");
    if (bracket != std::string::npos) msg = msg.substr(bracket + 2);
  }
  for (char& c : msg)
    if (c == '\n' || c == '\r') c = ' ';
  return msg;
}

// Parses `text` as the JSON document `file`; any failure is "file: <problem>: <cause>".
inline nlohmann::json parse_json_file(std::string_view text, std::string_view file,
                                      std::string_view problem = "not valid JSON") {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail_file(file, std::string(problem) + ": " + json_exception_text(e));
  }
}

// Runs f (which reads a parsed document); an nlohmann exception it lets escape becomes an error
// naming `file` — the backstop behind the typed reads below.
template <typename F>
auto with_json_errors(std::string_view file, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const nlohmann::json::exception& e) {
    fail_file(file, "malformed: " + json_exception_text(e));
  }
}

// The field `key` of object j, or nullptr when j has no such key or it is null.
inline const nlohmann::json* json_field(const nlohmann::json& j, std::string_view key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

// The value v (named `what` in errors, e.g. "\"vocab_size\"" or "model.vocab \"a\"") as an
// integer in [lo, hi]: a float (1.5, 5.0), a string or an out-of-range integer is an error.
inline int64_t json_as_int(const nlohmann::json& v, std::string_view what, std::string_view file,
                           int64_t lo = std::numeric_limits<int64_t>::min(),
                           int64_t hi = std::numeric_limits<int64_t>::max()) {
  bool ok = false;
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    ok = u <= uint64_t(std::numeric_limits<int64_t>::max());
    x = ok ? int64_t(u) : 0;
  } else if (v.is_number_integer()) {
    ok = true;
    x = v.get<int64_t>();
  }
  if (!ok || x < lo || x > hi) {
    std::string dumped = v.dump();
    if (dumped.size() > 40) dumped = dumped.substr(0, 40) + "...";
    fail_file(file, std::string(what) + " must be an integer from " + std::to_string(lo) + " to " +
                        std::to_string(hi) + ", got " + dumped);
  }
  return x;
}

inline bool json_as_bool(const nlohmann::json& v, std::string_view what, std::string_view file) {
  if (!v.is_boolean()) {
    std::string dumped = v.dump();
    if (dumped.size() > 40) dumped = dumped.substr(0, 40) + "...";
    fail_file(file, std::string(what) + " must be true or false, got " + dumped);
  }
  return v.get<bool>();
}

inline std::string json_as_string(const nlohmann::json& v, std::string_view what,
                                  std::string_view file) {
  if (!v.is_string()) {
    std::string dumped = v.dump();
    if (dumped.size() > 40) dumped = dumped.substr(0, 40) + "...";
    fail_file(file, std::string(what) + " must be a string, got " + dumped);
  }
  return v.get<std::string>();
}

inline double json_as_number(const nlohmann::json& v, std::string_view what,
                             std::string_view file) {
  if (!v.is_number()) {
    std::string dumped = v.dump();
    if (dumped.size() > 40) dumped = dumped.substr(0, 40) + "...";
    fail_file(file, std::string(what) + " must be a number, got " + dumped);
  }
  return v.get<double>();
}

inline std::string json_key_name(std::string_view key) { return "\"" + std::string(key) + "\""; }

// Required fields: missing (or null) is "file: missing field "key"".
inline const nlohmann::json& json_require(const nlohmann::json& j, std::string_view key,
                                          std::string_view file) {
  const nlohmann::json* v = json_field(j, key);
  if (v == nullptr) fail_file(file, "missing field " + json_key_name(key));
  return *v;
}

inline int64_t json_get_int(const nlohmann::json& j, std::string_view key, std::string_view file,
                            int64_t lo = std::numeric_limits<int64_t>::min(),
                            int64_t hi = std::numeric_limits<int64_t>::max()) {
  return json_as_int(json_require(j, key, file), "field " + json_key_name(key), file, lo, hi);
}

// An unsigned size in [lo, hi] (config sizes: bounded so products of them stay far from 2^64).
inline uint64_t json_get_uint64_bounded(const nlohmann::json& j, std::string_view key, uint64_t lo,
                                        uint64_t hi, std::string_view file) {
  return uint64_t(json_get_int(j, key, file, int64_t(lo), int64_t(hi)));
}

inline std::string json_get_string(const nlohmann::json& j, std::string_view key,
                                   std::string_view file) {
  return json_as_string(json_require(j, key, file), "field " + json_key_name(key), file);
}

// Optional fields: missing or null gives `fallback`; present with another type is an error.
inline bool json_get_bool(const nlohmann::json& j, std::string_view key, bool fallback,
                          std::string_view file) {
  const nlohmann::json* v = json_field(j, key);
  return v ? json_as_bool(*v, "field " + json_key_name(key), file) : fallback;
}

inline std::string json_get_string(const nlohmann::json& j, std::string_view key,
                                   std::string fallback, std::string_view file) {
  const nlohmann::json* v = json_field(j, key);
  return v ? json_as_string(*v, "field " + json_key_name(key), file) : fallback;
}

inline int64_t json_get_int(const nlohmann::json& j, std::string_view key, int64_t fallback,
                            std::string_view file, int64_t lo = std::numeric_limits<int64_t>::min(),
                            int64_t hi = std::numeric_limits<int64_t>::max()) {
  const nlohmann::json* v = json_field(j, key);
  return v ? json_as_int(*v, "field " + json_key_name(key), file, lo, hi) : fallback;
}

inline double json_get_number(const nlohmann::json& j, std::string_view key, double fallback,
                              std::string_view file) {
  const nlohmann::json* v = json_field(j, key);
  return v ? json_as_number(*v, "field " + json_key_name(key), file) : fallback;
}

}  // namespace hibari
