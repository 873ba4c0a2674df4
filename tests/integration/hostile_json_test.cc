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

// A handler thread's stack (ConnectionLimits::worker_stack_bytes) must hold the deepest request
// the limits let through: a JSON schema nested to the depth limit, converted to a grammar, and a
// path as long as any routed one (httplib's regex routing recurses per character).
TEST(HostileJsonTest, RequestsAtTheLimitsFitAHandlerThreadsStack) {
  ServerProcess server(TestCaseDir());
  std::string items = R"({"type":"string"})";
  for (int i = 0; i < 253; ++i) items = R"({"type":"array","items":)" + items + "}";
  std::string props = R"({"type":"string"})";
  for (int i = 0; i < 126; ++i) props = R"({"type":"object","required":["a"],"properties":{"a":)" + props + "}}";
  for (const std::string& schema : {items, props}) {
    for (const char* path : {"/api/generate", "/api/chat"}) {
      std::string body = std::string(R"({"model":"m","prompt":"x","messages":[],"format":)") + schema + "}";
      HttpReply r = Post(server.port(), path, body);
      EXPECT_EQ(r.status, 404) << path << ": " << r.body.substr(0, 200);  // decoded, then no such model
      ASSERT_TRUE(server.alive()) << "the server died on " << path;
    }
  }
  for (size_t n : {300, 1000, 1013, 5000}) {  // "/v1/models/" + n: up to 1024 routed, longer a 404
    HttpReply r = Get(server.port(), "/v1/models/" + std::string(n, 'a'));
    EXPECT_TRUE(r.status == 400 || r.status == 404) << n << ": " << r.status << " " << r.body.substr(0, 200);
    ASSERT_TRUE(server.alive()) << "the server died on a path of " << n + 11 << " bytes";
  }
}

}  // namespace
}  // namespace resident::testing
