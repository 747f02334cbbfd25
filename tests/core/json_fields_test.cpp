// core/json_fields.h and core/checked_math.h: every JSON exception becomes a one-line Error naming
// the file; typed reads refuse a wrong type, a float for an integer and an out-of-range integer
// (issue 13: 1.5 read as 1, 2^40 wrapped to 0, "true" read as false); size products never wrap.
#include "core/json_fields.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "core/checked_math.h"
#include "tests/error_matchers.h"

namespace hibari {
namespace {

using nlohmann::json;
using test::error_of;
using test::one_line_error;

TEST(JsonFields, ParseNamesTheFileForEveryExceptionKind) {
  EXPECT_TRUE(one_line_error(error_of([] { parse_json_file("{\"a\": ", "f.json"); }), "f.json",
                             "not valid JSON: "));
  // nlohmann reports 1e309 as out_of_range, not parse_error.
  const std::string overflow = error_of([] { parse_json_file("{\"a\": 1e309}", "f.json"); });
  EXPECT_TRUE(one_line_error(overflow, "f.json", "number overflow"));
  EXPECT_EQ(overflow.find("[json.exception"), std::string::npos) << overflow;
  EXPECT_TRUE(one_line_error(error_of([] { parse_json_file("[1,\n", "g.json", "bad"); }), "g.json",
                             "bad: "));
  EXPECT_EQ(parse_json_file("{\"a\": 1}", "f.json")["a"], 1);
}

TEST(JsonFields, WithJsonErrorsNamesTheFile) {
  const json j = {{"a", "text"}};
  EXPECT_TRUE(one_line_error(
      error_of([&] { with_json_errors("f.json", [&] { return j["a"].get<int>(); }); }), "f.json",
      "malformed: "));
}

TEST(JsonFields, IntegersAreIntegersInRange) {
  const json j = json::parse(R"({"a": 7, "f": 1.5, "g": 5.0, "s": "7", "big": 1099511627776,
                                 "huge": 18446744073709551615, "neg": -3, "n": null})");
  EXPECT_EQ(json_get_int(j, "a", "f.json"), 7);
  EXPECT_EQ(json_get_int(j, "neg", "f.json"), -3);
  EXPECT_EQ(json_get_int(j, "missing", int64_t{4}, "f.json"), 4);
  EXPECT_EQ(json_get_int(j, "n", int64_t{4}, "f.json"), 4);  // null: the default
  for (const char* key : {"f", "g", "s", "huge"})
    EXPECT_TRUE(one_line_error(error_of([&] { json_get_int(j, key, "f.json"); }), "f.json",
                               std::string("field \"") + key + "\" must be an integer"))
        << key;
  EXPECT_TRUE(one_line_error(error_of([&] { json_get_int(j, "big", "f.json", 0, INT32_MAX); }),
                             "f.json",
                             "must be an integer from 0 to 2147483647, got 1099511627776"));
  EXPECT_TRUE(one_line_error(error_of([&] { json_get_uint64_bounded(j, "neg", 0, 10, "f.json"); }),
                             "f.json", "\"neg\" must be an integer from 0 to 10"));
  EXPECT_TRUE(one_line_error(error_of([&] { json_get_int(j, "missing", "f.json"); }), "f.json",
                             "missing field \"missing\""));
}

TEST(JsonFields, BooleansStringsAndNumbersKeepTheirTypes) {
  const json j = json::parse(R"({"t": true, "st": "true", "one": 1, "s": "x", "five": 5,
                                 "x": 0.25, "n": null})");
  EXPECT_TRUE(json_get_bool(j, "t", false, "f.json"));
  EXPECT_FALSE(json_get_bool(j, "missing", false, "f.json"));
  EXPECT_TRUE(json_get_bool(j, "n", true, "f.json"));
  for (const char* key : {"st", "one"})
    EXPECT_TRUE(one_line_error(error_of([&] { json_get_bool(j, key, false, "f.json"); }), "f.json",
                               std::string("field \"") + key + "\" must be true or false"));
  EXPECT_EQ(json_get_string(j, "s", "f.json"), "x");
  EXPECT_EQ(json_get_string(j, "missing", std::string("d"), "f.json"), "d");
  EXPECT_TRUE(one_line_error(error_of([&] { json_get_string(j, "five", "f.json"); }), "f.json",
                             "field \"five\" must be a string, got 5"));
  EXPECT_EQ(json_get_number(j, "x", 1.0, "f.json"), 0.25);
  EXPECT_EQ(json_get_number(j, "five", 1.0, "f.json"), 5.0);
  EXPECT_TRUE(one_line_error(error_of([&] { json_get_number(j, "s", 1.0, "f.json"); }), "f.json",
                             "field \"s\" must be a number"));
}

TEST(CheckedMath, ProductsAndSumsThatWrapAreErrors) {
  EXPECT_EQ(checked_mul(size_t{1} << 20, size_t{1} << 20, "x"), size_t{1} << 40);
  EXPECT_EQ(checked_product("x", 2, 3, 7), 42u);
  EXPECT_NE(
      error_of([] { checked_mul(size_t{1} << 62, 16, "layout"); }).find("layout: size overflows"),
      std::string::npos);
  EXPECT_NE(
      error_of([] { checked_product("acts", size_t{1} << 40, 1, size_t{1} << 30); }).find("acts"),
      std::string::npos);
  EXPECT_NE(error_of([] { checked_add(SIZE_MAX, 1, "sum"); }).find("sum: size overflows"),
            std::string::npos);
}

}  // namespace
}  // namespace hibari
