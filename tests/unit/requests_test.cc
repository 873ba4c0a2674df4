#include "api/requests.h"

#include <gtest/gtest.h>

#include <string>

namespace resident::api {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// Found by fuzzing the request decoders (fuzz/regressions/requests/): a body of a few hundred KB
// whose options or format nest arrays 100,000 deep crashed the server. Parsing is iterative, but
// dump() (options kept as text, a format schema handed to the converter) recurses once per level
// and overflowed the handler thread's stack (ASan: stack-overflow in nlohmann's serializer).
TEST(RequestDecoding, DeeplyNestedBodiesAreRejectedInsteadOfOverflowingTheStack) {
  const RequestDefaults defaults;
  const std::string deep = Nested(100000);
  for (const std::string& body : {R"({"model":"m","options":{"x":)" + deep + "}}",
                                  R"({"model":"m","format":{"x":)" + deep + "}}",
                                  R"({"model":"m","zzz":)" + deep + "}"}) {
    auto g = DecodeGenerate(body, defaults);
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(g.status().message().find("nested deeper than 256"), std::string::npos) << g.status().message();
    EXPECT_FALSE(DecodeChat(body, defaults).ok());
    EXPECT_FALSE(DecodeEmbed(body, defaults, false).ok());
  }
}

TEST(RequestDecoding, NestingUpToTheLimitDecodes) {
  const RequestDefaults defaults;
  // The body object is level 1, "options" level 2: kMaxJsonDepth levels in all.
  auto g = DecodeGenerate(R"({"model":"m","options":{"x":)" + Nested(kMaxJsonDepth - 2) + "}}", defaults);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_FALSE(g->options.request_json.empty());
  EXPECT_FALSE(
      DecodeGenerate(R"({"model":"m","options":{"x":)" + Nested(kMaxJsonDepth - 1) + "}}", defaults).ok());
  // Brackets inside strings, escaped quotes included, are text, not nesting.
  const std::string text(1000, '[');
  auto quoted = DecodeGenerate(R"({"model":"m","prompt":"\")" + text + R"(\\"})", defaults);
  ASSERT_TRUE(quoted.ok()) << quoted.status().message();
  EXPECT_EQ(quoted->prompt, "\"" + text + "\\");
}

}  // namespace
}  // namespace resident::api
