#include "api/cors.h"

#include <gtest/gtest.h>

namespace resident::api {
namespace {

TEST(OriginMatches, ExactPatternsAndOneWildcardAsGinCors) {
  EXPECT_TRUE(OriginMatches("http://localhost", "http://localhost"));
  EXPECT_TRUE(OriginMatches("http://localhost", "HTTP://LocalHost"));  // scheme and host are case-insensitive
  EXPECT_FALSE(OriginMatches("http://localhost", "http://localhost:3000"));
  EXPECT_FALSE(OriginMatches("http://localhost", "https://localhost"));
  EXPECT_TRUE(OriginMatches("http://localhost:*", "http://localhost:3000"));
  EXPECT_FALSE(OriginMatches("http://localhost:*", "http://localhost.evil.com"));
  EXPECT_FALSE(OriginMatches("http://localhost:*", "http://localhost"));
  EXPECT_TRUE(OriginMatches("http://example.com:*", "http://example.com:8080"));
  EXPECT_TRUE(OriginMatches("https://*.example.com", "https://app.example.com"));
  EXPECT_FALSE(OriginMatches("https://*.example.com", "https://example.com.evil.net"));
  EXPECT_FALSE(OriginMatches("https://*.example.com", "http://app.example.com"));
  EXPECT_TRUE(OriginMatches("*", "https://anything.at.all"));
  EXPECT_TRUE(OriginMatches("app://*", "app://obsidian.md"));
  EXPECT_FALSE(OriginMatches("http://*.a.com:*", "http://x.a.com:1"));  // two wildcards: never matches
}

TEST(OriginPolicy, AllowsTheLocalOriginsAndAppSchemesByDefault) {
  OriginPolicy policy;
  for (const char* ok : {"http://localhost", "https://localhost", "http://localhost:5173", "https://localhost:8443",
                         "http://127.0.0.1", "http://127.0.0.1:3000", "https://127.0.0.1:1", "http://0.0.0.0",
                         "https://0.0.0.0:9", "app://x", "file://", "tauri://localhost", "vscode-webview://abc",
                         "vscode-file://vscode-app"}) {
    EXPECT_TRUE(policy.Allows(ok)) << ok;
  }
  for (const char* bad : {"https://evil.example", "http://localhost.evil.example", "http://127.0.0.2",
                          "http://192.168.1.10:11434", "null", "chrome-extension://abc"}) {
    EXPECT_FALSE(policy.Allows(bad)) << bad;
  }
  EXPECT_FALSE(policy.allows_all());
}

TEST(OriginPolicy, AddsTheConfiguredOriginsToTheDefaults) {
  OriginPolicy policy(ParseOriginList(" https://app.example.com , http://example.com:*,,"));
  EXPECT_TRUE(policy.Allows("https://app.example.com"));
  EXPECT_TRUE(policy.Allows("http://example.com:8080"));
  EXPECT_FALSE(policy.Allows("https://example.com"));
  EXPECT_TRUE(policy.Allows("http://localhost:3000"));  // the defaults stay
  EXPECT_FALSE(policy.allows_all());

  OriginPolicy all(ParseOriginList("*"));
  EXPECT_TRUE(all.allows_all());
  EXPECT_TRUE(all.Allows("https://evil.example"));
}

TEST(ParseOriginList, SplitsOnCommasAndTrims) {
  EXPECT_EQ(ParseOriginList("a, b ,c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(ParseOriginList("").empty());
  EXPECT_TRUE(ParseOriginList(" , ").empty());
}

}  // namespace
}  // namespace resident::api
