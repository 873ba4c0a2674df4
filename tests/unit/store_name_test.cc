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

// Each refusal says the rule that is broken; ".hidden" was refused by a message that listed '.'
// among the characters allowed.
TEST(StoreNameTest, ARefusalSaysTheRuleThatIsBroken) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {".hidden", "invalid model name \".hidden\": the model part must start with a letter, a digit or '_', not '.'"},
      {"-leading", "invalid model name \"-leading\": the model part must start with a letter, a digit or '_', not '-'"},
      {"sp ace", "invalid model name \"sp ace\": the model part may only use letters, digits, '_', '-' and '.' after "
                 "its first character, not ' '"},
      {"m..x", "invalid model name \"m..x\": the model part must not contain \"..\""},
      {"m:-tag", "invalid model name \"m:-tag\": the tag must start with a letter, a digit or '_', not '-'"},
      {"m:", "invalid model name \"m:\": the tag is empty"},
      {"ns/.x/m", "invalid model name \"ns/.x/m\": the namespace must start with a letter, a digit or '_', not '.'"},
      {"_h/ns/m", "invalid model name \"_h/ns/m\": the host must start with a letter or a digit, not '_'"},
      {"host:port/ns/m", "invalid model name \"host:port/ns/m\": the host's port must be 1 to 5 digits"},
      {std::string(81, 'a'), "the model part is longer than 80 characters"},
      {"caf\xc3\xa9", "the model part may only use letters, digits, '_', '-' and '.' after its first character, "
                      "not byte 0xc3"},
  };
  for (const auto& [name, message] : cases) {
    auto r = ParseModelName(name);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_NE(r.status().message().find(message), std::string::npos) << r.status().message();
  }
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
