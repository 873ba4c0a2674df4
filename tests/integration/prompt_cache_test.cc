// The prompt survives the unload (README, "Prompt cache"): the real server saves a model's prompt
// prefixes to RESIDENT_PROMPT_CACHE when it unloads it, and the next load restores them, so a
// request evaluates only its new tokens; a seeded request gives the text of a fresh runner; a
// broken entry is ignored, removed and logged; another context size never uses an entry; a sleep
// saves as an unload does.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// About 45 tokens; the prompts below repeat it into a long shared prefix (a system prompt, a
// document) followed by a short question.
const std::string kParagraph =
    "In the small harbour town the fishing boats came back at dawn, and the market filled with voices, "
    "nets, gulls and the smell of salt while the";

std::string SharedPrefix() {
  std::string s;
  for (int i = 0; i < 10; ++i) s += kParagraph + " ";  // about 370 tokens
  return s;
}

class PromptCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    cache_ = dir_ + "/prompt-cache";
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }

  std::map<std::string, std::string> CacheOn() const { return {{"RESIDENT_PROMPT_CACHE", cache_}}; }

  // A completion through /v1/completions (the prompt as it is), whose usage says how many prompt
  // tokens came from a cache: {prompt_tokens, cached_tokens, text}.
  struct Completion {
    int prompt_tokens = -1;
    int cached_tokens = -1;
    std::string text;
  };
  static Completion Complete(int port, const std::string& prompt, json extra = json::object()) {
    json body{{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", 4}, {"temperature", 0}};
    for (auto& [k, v] : extra.items()) body[k] = v;
    auto r = Post(port, "/v1/completions", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    json j = r.json();
    Completion c;
    c.prompt_tokens = j["usage"].value("prompt_tokens", -1);
    c.cached_tokens = j["usage"].contains("prompt_tokens_details") ? j["usage"]["prompt_tokens_details"].value("cached_tokens", -1) : 0;
    c.text = j["choices"][0].value("text", std::string());
    return c;
  }
  // A seeded generation: num_batch 8 makes the shared prefix dozens of canonical chunks, and a
  // high temperature makes sampling sensitive to the last bits of the logits.
  static std::string Seeded(int port, const std::string& prompt, int num_ctx = 2048) {
    json body{{"model", "tiny"},
              {"prompt", prompt},
              {"stream", false},
              {"options",
               {{"num_predict", 40}, {"seed", 1234}, {"temperature", 1.5}, {"top_k", 0}, {"num_batch", 8}, {"num_ctx", num_ctx}}}};
    auto r = Post(port, "/api/generate", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().value("response", std::string());
  }
  static void Unload(int port) {
    ASSERT_EQ(Post(port, "/api/generate", json{{"model", "tiny"}, {"keep_alive", 0}}.dump()).status, 200);
  }
  static double Metric(int port, const std::string& name) {
    auto r = Get(port, "/metrics");
    EXPECT_EQ(r.status, 200);
    return MetricSample(r.body, name);
  }
  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    if (!fs::exists(cache_)) return out;
    for (const auto& e : fs::directory_iterator(cache_)) {
      if (e.path().extension() == ".kv") out.push_back(e.path().string());
    }
    return out;
  }

  std::string dir_;
  std::string cache_;
};

TEST_F(PromptCacheTest, AfterAReloadARequestEvaluatesOnlyItsNewTokens) {
  const std::string first = SharedPrefix() + "Who counted the boats?";
  const std::string second = SharedPrefix() + "What did the gulls do?";

  // What the second request reuses when the model stays loaded: the reference.
  int warm_cached = 0;
  {
    ServerProcess warm(dir_);
    (void)Complete(warm.port(), first);
    Completion c = Complete(warm.port(), second);
    warm_cached = c.cached_tokens;
    ASSERT_GT(warm_cached, 300) << "the shared prefix is reused while loaded";
  }

  ServerProcess server(dir_, CacheOn());
  const int port = server.port();
  Completion cold = Complete(port, first);
  EXPECT_EQ(cold.cached_tokens, 0) << "nothing is cached before the first request";
  Unload(port);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_saves_total"), 1);
  EXPECT_GT(Metric(port, "resident_prompt_cache_saved_bytes_total"), 0);
  ASSERT_EQ(Entries().size(), 1u);
  EXPECT_TRUE(WaitForLog(server, "tiny:latest: prompt cache: saved ")) << "one log line per save";

  // A prompt that shares nothing with the entry (or only its first token) reads nothing.
  EXPECT_EQ(Complete(port, "Hello").cached_tokens, 0);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 0);

  // The saved prefix is restored, and only the new tokens are evaluated, as if the model had
  // stayed loaded.
  Completion reloaded = Complete(port, second);
  EXPECT_EQ(reloaded.cached_tokens, warm_cached);
  EXPECT_LT(reloaded.prompt_tokens - reloaded.cached_tokens, 20) << "only the question is evaluated";
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 1);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_restored_tokens_total"), warm_cached);
  EXPECT_GT(Metric(port, "resident_prompt_cache_restored_bytes_total"), 0);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_dropped_total"), 0);
  EXPECT_TRUE(WaitForLog(server, "tiny:latest: prompt cache: restored ")) << "one log line per restore";

  // The second unload saves the new conversation beside the first (they share only the prefix).
  Unload(port);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_saves_total"), 2);
  EXPECT_EQ(Entries().size(), 2u);
}

TEST_F(PromptCacheTest, ASeededRequestAfterARestoreGivesTheTextOfAFreshRunner) {
  const std::string same = SharedPrefix();
  const std::string longer = SharedPrefix() + "The old lighthouse keeper counted the boats one by one";

  // What fresh runners give, with no cache at all.
  std::string fresh_same, fresh_longer;
  {
    ServerProcess plain(dir_);
    fresh_same = Seeded(plain.port(), same);
    Unload(plain.port());
    fresh_longer = Seeded(plain.port(), longer);
    ASSERT_FALSE(fresh_same.empty());
    ASSERT_NE(fresh_same, fresh_longer);
  }

  ServerProcess server(dir_, CacheOn());
  const int port = server.port();
  EXPECT_EQ(Seeded(port, same), fresh_same) << "a fresh runner with an empty cache";
  Unload(port);
  ASSERT_EQ(Metric(port, "resident_prompt_cache_saves_total"), 1);
  EXPECT_TRUE(WaitForLog(server, " canonical) to ")) << "the entry records its canonical chunks";

  EXPECT_EQ(Seeded(port, same), fresh_same) << "the same prompt, restored";
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 1);
  const double restored = Metric(port, "resident_prompt_cache_restored_tokens_total");
  EXPECT_GT(restored, 300) << "whole canonical chunks of the shared prefix are reused";
  EXPECT_EQ(static_cast<long>(restored) % 8, 0) << "a seeded request reuses whole chunks of num_batch only";
  Unload(port);

  EXPECT_EQ(Seeded(port, longer), fresh_longer) << "a longer prompt sharing the restored prefix";
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 2);
}

TEST_F(PromptCacheTest, ABrokenEntryIsIgnoredRemovedAndLoggedAndTheRequestSucceeds) {
  const std::string prompt = SharedPrefix() + "Who counted the boats?";
  ServerProcess server(dir_, CacheOn());
  const int port = server.port();
  const std::string expected = Complete(port, prompt).text;
  Unload(port);
  auto entries = Entries();
  ASSERT_EQ(entries.size(), 1u);

  // One bit of the saved state flipped (its middle: the KV cache's values): found when the
  // request would restore it, or at the load that checks the newest entry ahead.
  {
    const auto middle = static_cast<std::streamoff>(fs::file_size(entries[0]) / 2);
    std::fstream f(entries[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(middle);
    char c = 0;
    f.read(&c, 1);
    c ^= 0x04;
    f.seekp(middle);
    f.write(&c, 1);
  }
  Completion after_corruption = Complete(port, prompt);
  EXPECT_EQ(after_corruption.text, expected) << "evaluated again, as without a cache";
  EXPECT_EQ(after_corruption.cached_tokens, 0);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 0);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_dropped_total"), 1);
  EXPECT_TRUE(WaitForLog(server, "its state fails its checksum (corrupt); removed"));
  EXPECT_FALSE(fs::exists(entries[0]));

  // A save cut short: found when the next load reads the folder.
  Unload(port);
  entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  fs::resize_file(entries[0], fs::file_size(entries[0]) / 2);
  Completion after_truncation = Complete(port, prompt);
  EXPECT_EQ(after_truncation.text, expected);
  EXPECT_EQ(after_truncation.cached_tokens, 0);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_dropped_total"), 2);
  EXPECT_TRUE(WaitForLog(server, "it does not end with the footer of a prompt cache entry (cut short"));
  EXPECT_FALSE(fs::exists(entries[0]));

  // The next save and restore work again.
  Unload(port);
  Completion restored = Complete(port, prompt);
  EXPECT_GT(restored.cached_tokens, 300);
  EXPECT_EQ(restored.text, expected);
}

TEST_F(PromptCacheTest, AnotherContextSizeDoesNotUseTheEntry) {
  const std::string prompt = SharedPrefix() + "Who counted the boats?";
  ServerProcess server(dir_, CacheOn());
  const int port = server.port();
  auto generate = [&](int num_ctx) {
    json body{{"model", "tiny"}, {"prompt", prompt}, {"stream", false},
              {"options", {{"num_predict", 4}, {"temperature", 0}, {"num_ctx", num_ctx}}}};
    EXPECT_EQ(Post(port, "/api/generate", body.dump()).status, 200);
  };
  generate(2048);
  Unload(port);
  ASSERT_EQ(Entries().size(), 1u);

  // num_ctx 1024 shapes the KV cache otherwise: the entry is neither used nor removed.
  generate(1024);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 0);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_dropped_total"), 0);
  EXPECT_EQ(Entries().size(), 1u);
  Unload(port);
  EXPECT_EQ(Entries().size(), 2u) << "each context size has its own entry";

  generate(2048);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 1);
  EXPECT_GT(Metric(port, "resident_prompt_cache_restored_tokens_total"), 300);
}

TEST_F(PromptCacheTest, WithTwoSlotsEachConversationIsSavedAndRestoredIntoEitherSlot) {
  ServerProcess server(dir_, {{"RESIDENT_PROMPT_CACHE", cache_}, {"RESIDENT_NUM_PARALLEL", "2"}});
  const int port = server.port();
  const std::string a = SharedPrefix() + "Who counted the boats?";
  const std::string b = "Completely different: " + SharedPrefix() + "What did the gulls do?";
  // b runs while a generates, so each has a slot (a sequence of its own KV stream).
  std::atomic<bool> a_generating{false}, b_done{false};
  std::thread first([&] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(std::chrono::minutes(2));
    httplib::Request r;
    r.method = "POST";
    r.path = "/v1/completions";  // as Complete: the same tokens
    r.body = json{{"model", "tiny"}, {"prompt", a}, {"stream", true}, {"max_tokens", 2000}, {"temperature", 0}}.dump();
    r.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      a_generating = true;
      return !b_done.load();  // leaves (cancelling the rest) once b is done
    };
    client.send(r);
  });
  ASSERT_TRUE(WaitFor([&] { return a_generating.load(); }));
  (void)Complete(port, b);
  b_done = true;
  first.join();
  Unload(port);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_saves_total"), 2) << "one entry per slot";
  EXPECT_EQ(Entries().size(), 2u);
  // Both come back, each into whichever slot the request takes.
  EXPECT_GT(Complete(port, b).cached_tokens, 300);
  EXPECT_GT(Complete(port, a).cached_tokens, 300);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 2);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_dropped_total"), 0);
}

// A sleep frees the context as an unload does: the idle slot's prefix is saved first, and the
// request that wakes the model restores it.
TEST_F(PromptCacheTest, TheRequestThatWakesASleepingModelRestoresItsPrefix) {
  std::map<std::string, std::string> env = CacheOn();
  env["RESIDENT_SLEEP_AFTER"] = "1s";
  ServerProcess server(dir_, env);
  const int port = server.port();
  EXPECT_EQ(Complete(port, SharedPrefix() + "Who counted the boats?").cached_tokens, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        json ps = Get(port, "/api/ps").json();
        return !ps["models"].empty() && ps["models"][0].value("state", "") == "sleeping";
      },
      std::chrono::seconds(60)));
  EXPECT_EQ(Metric(port, "resident_prompt_cache_saves_total"), 1);
  ASSERT_EQ(Entries().size(), 1u);

  Completion woken = Complete(port, SharedPrefix() + "What did the gulls do?");
  EXPECT_GT(woken.cached_tokens, 300) << "the shared prefix came back from the cache";
  EXPECT_LT(woken.prompt_tokens - woken.cached_tokens, 20) << "only the question is evaluated";
  EXPECT_EQ(Metric(port, "resident_prompt_cache_hits_total"), 1);
}

TEST_F(PromptCacheTest, OffSavesNothing) {
  ServerProcess server(dir_, {{"RESIDENT_PROMPT_CACHE", "off"}});
  const int port = server.port();
  (void)Complete(port, SharedPrefix() + "Who counted the boats?");
  Unload(port);
  EXPECT_EQ(Metric(port, "resident_prompt_cache_saves_total"), 0);
  EXPECT_FALSE(fs::exists(cache_));
  EXPECT_EQ(CountInLog(server, "prompt cache"), 0);
}

TEST_F(PromptCacheTest, TheFolderIsPrivateToItsOwner) {
  ServerProcess server(dir_, CacheOn());
  ASSERT_EQ(Get(server.port(), "/").status, 200);
  ASSERT_TRUE(fs::is_directory(cache_));
  EXPECT_EQ(fs::status(cache_).permissions() & fs::perms::all, fs::perms::owner_all);
}

}  // namespace
}  // namespace resident::testing
