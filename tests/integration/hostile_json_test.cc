// Request bodies built to crash the server through its JSON handling, on the real binary.
#include <gtest/gtest.h>

#include <string>

#include "support/test_env.h"

namespace resident::testing {
namespace {

// Found by fuzzing (fuzz/regressions/requests/): 100,000 nested arrays in a 200 KB body overflowed
// a handler thread's stack while the body was serialized (nlohmann's dump recurses per level),
// and the whole server died with SIGSEGV. Every route that takes JSON now answers 400.
TEST(HostileJsonTest, DeeplyNestedBodiesAreA400OnEveryRouteAndTheServerLivesOn) {
  ServerProcess server(TestCaseDir());  // no models: every body fails before a model is looked up
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::pair<const char*, std::string> cases[] = {
      {"/api/generate", R"({"model":"m","options":{"x":)" + deep + "}}"},
      {"/api/chat", R"({"model":"m","format":{"x":)" + deep + "}}"},
      {"/api/embed", R"({"model":"m","input":)" + deep + "}"},
      {"/api/create", R"({"model":"m","parameters":{"x":)" + deep + "}}"},
      {"/api/show", R"({"model":"m","x":)" + deep + "}"},
      {"/v1/chat/completions", R"({"model":"m","response_format":)" + deep + "}"},
      {"/v1/completions", R"({"model":"m","prompt":)" + deep + "}"},
  };
  for (const auto& [path, body] : cases) {
    HttpReply r = Post(server.port(), path, body);
    EXPECT_EQ(r.status, 400) << path << ": " << r.body.substr(0, 200);
    EXPECT_NE(r.body.find("nested deeper than"), std::string::npos) << path << ": " << r.body.substr(0, 200);
    ASSERT_TRUE(server.alive()) << "the server died on " << path;
  }
  EXPECT_EQ(Get(server.port(), "/api/version").status, 200);
}

}  // namespace
}  // namespace resident::testing
