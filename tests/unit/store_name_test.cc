// Model names: Ollama's [host/][namespace/]model[:tag], case-insensitive, and nothing that could
// become a path outside the store.
#include <gtest/gtest.h>

#include <vector>

#include "store/model_catalog.h"
#include "store/model_name.h"

namespace resident::store {
namespace {

TEST(StoreNameTest, DefaultsAndDisplay) {
  auto n = ParseModelName("Llama3.2");
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(n->host, "registry.ollama.ai");
  EXPECT_EQ(n->ns, "library");
  EXPECT_EQ(n->model, "llama3.2");
  EXPECT_EQ(n->tag, "latest");
  EXPECT_EQ(n->Display(), "llama3.2:latest");
  EXPECT_EQ(n->ManifestRelPath(), "registry.ollama.ai/library/llama3.2/latest");

  EXPECT_EQ(ParseModelName("me/m:Q4")->Display(), "me/m:q4");
  EXPECT_EQ(ParseModelName("MyHost:5000/ns/m:tag")->Display(), "myhost:5000/ns/m:tag");
  EXPECT_EQ(ParseModelName("myhost:5000/ns/m")->tag, "latest");
  EXPECT_EQ(ParseModelName("registry.ollama.ai/library/qwen:0.5b")->Display(), "qwen:0.5b");
  EXPECT_EQ(*NormalizeModelName("DEMO"), "demo:latest");
  EXPECT_EQ(ParseModelName("a_b-c.d:1.0_x-y").ok(), true);
}

TEST(StoreNameTest, RejectsNamesThatCouldLeaveTheStore) {
  for (std::string bad : std::vector<std::string>{"", "..", "../x", "x/../y", "a/b/c/d", "/abs", "/etc/passwd", "x:", ":tag", "m:../../x", "m:a/b",
        "%2e%2e", "%2e%2e/x", "a\\b", "m\\..\\x", ".hidden", "m..x", "m:..", "sp ace", "tab\tx", "x:y:z",
        "host:port/ns/m", "-leading", "m:-tag", "ns/.", "./m"}) {
    EXPECT_FALSE(ParseModelName(bad).ok()) << "accepted \"" << bad << "\"";
  }
  EXPECT_FALSE(ParseModelName(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(ParseModelName(std::string(351, 'a')).ok());
  EXPECT_FALSE(ParseModelName(std::string(81, 'a')).ok());  // one part too long
  EXPECT_TRUE(ParseModelName(std::string(80, 'a')).ok());
  auto empty = ParseModelName("");
  EXPECT_EQ(empty.status().message(), "model is required");
  auto bad = ParseModelName("../x");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("invalid model name"), std::string::npos);
}

// Found by fuzzing (fuzz/regressions/model_name/): a 346-character name without a tag parsed, but
// its display form ("...:latest", 353 characters) did not, so `resident list` could show a name
// that `resident rm` rejects. The 350-character limit now holds for the display form too.
TEST(StoreNameTest, EveryNameThatParsesDisplaysAsANameThatParsesToItself) {
  const std::string host(200, 'h'), ns(70, 'n'), model(74, 'm');
  const std::string untagged = host + "/" + ns + "/" + model;  // 346 characters
  ASSERT_EQ(untagged.size(), 346u);
  auto n = ParseModelName(untagged);
  ASSERT_FALSE(n.ok()) << n->Display();
  EXPECT_NE(n.status().message().find("longer than 350 characters with its tag"), std::string::npos)
      << n.status().message();
  // The same name with a tag that keeps the display within 350 characters parses and round-trips.
  for (const std::string& name : {untagged.substr(3) + ":q", host + "/" + ns + "/" + model.substr(4) + ":latest",
                                  "registry.ollama.ai/library/" + model + ":v1"}) {
    auto ok = ParseModelName(name);
    ASSERT_TRUE(ok.ok()) << name << ": " << ok.status().message();
    auto again = ParseModelName(ok->Display());
    ASSERT_TRUE(again.ok()) << ok->Display() << ": " << again.status().message();
    EXPECT_EQ(*again, *ok);
  }
}

}  // namespace
}  // namespace resident::store
