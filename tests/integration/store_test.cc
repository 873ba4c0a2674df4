// Integration tests of the model store through the real server and CLI: create (API and
// `resident create`), list, show, copy, delete, run; an Ollama store served read-only; bad input.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <utility>
#include <vector>

#include "store/gguf_synth.h"
#include "store/sha256.h"
#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

HttpReply Delete(int port, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Delete("/api/delete", body, "application/json");
  return r ? HttpReply{r->status, r->body} : HttpReply{};
}

struct CliResult {
  int code = -1;
  std::string out;
};

// Runs `resident ARGS` with extra environment, capturing stdout and stderr together.
CliResult Cli(const std::string& args, const std::map<std::string, std::string>& env, const std::string& dir) {
  std::string cmd;
  for (const auto& [k, v] : env) cmd += k + "='" + v + "' ";
  std::string out = dir + "/cli.out";
  cmd += std::string(RESIDENT_BINARY) + " " + args + " > '" + out + "' 2>&1";
  int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadAll(out)};
}

class StoreServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir() + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_ + "/folder");
    // A private copy: the store hard-links it, and the shared synth cache must stay untouched.
    gguf_ = dir_ + "/weights.gguf";
    fs::copy_file(SynthModel("20M", 1), gguf_);
    store_ = dir_ + "/store";
  }
  std::map<std::string, std::string> Env() const { return {{"RESIDENT_MODELS", store_}}; }

  std::string dir_, gguf_, store_;
};

TEST_F(StoreServerTest, CreateShowCopyRunAndDeleteThroughTheApi) {
  ServerProcess server(dir_ + "/folder", Env());
  const int port = server.port();
  json create{{"model", "m"},
              {"modelfile", "FROM " + gguf_ + "\nPARAMETER temperature 0.3\nPARAMETER stop \"</s>\"\nSYSTEM \"\"\"Be brief.\"\"\"\nLICENSE MIT\n"}};
  auto r = Post(port, "/api/create", create.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto lines = r.lines();
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines.front()["status"], "parsing modelfile");
  EXPECT_EQ(lines.back()["status"], "success");
  bool progress = false;
  for (const json& l : lines) progress |= l.contains("total") && l["completed"] == l["total"];
  EXPECT_TRUE(progress) << r.body;
  // Ollama's layout on disk.
  ASSERT_TRUE(fs::exists(store_ + "/manifests/registry.ollama.ai/library/m/latest"));
  ASSERT_TRUE(fs::exists(store_ + "/blobs/sha256-" + *store::Sha256File(gguf_)));

  auto tags = Get(port, "/api/tags").json();
  ASSERT_EQ(tags["models"].size(), 1u);
  EXPECT_EQ(tags["models"][0]["name"], "m:latest");
  EXPECT_EQ(tags["models"][0]["details"]["family"], "llama");
  EXPECT_EQ(tags["models"][0]["details"]["quantization_level"], "F16");
  EXPECT_EQ(tags["models"][0]["digest"],
            store::Sha256Hex(ReadAll(store_ + "/manifests/registry.ollama.ai/library/m/latest")));

  auto show = Post(port, "/api/show", R"({"model":"M"})");
  ASSERT_EQ(show.status, 200) << show.body;
  json s = show.json();
  EXPECT_EQ(s["system"], "Be brief.");
  EXPECT_EQ(s["license"], "MIT");
  EXPECT_NE(s["parameters"].get<std::string>().find("temperature"), std::string::npos);
  EXPECT_NE(s["modelfile"].get<std::string>().find("PARAMETER stop \"</s>\""), std::string::npos);
  EXPECT_FALSE(s["template"].get<std::string>().empty());  // the GGUF's own chat template
  EXPECT_EQ(s["details"]["family"], "llama");
  EXPECT_EQ(s["model_info"]["general.architecture"], "llama");
  EXPECT_EQ(s["model_info"]["llama.embedding_length"], 256);
  EXPECT_EQ(s["capabilities"], json::array({"completion"}));
  EXPECT_TRUE(s.contains("modified_at"));

  auto gen = Post(port, "/api/generate",
                  R"({"model":"m","prompt":"hi","stream":false,"options":{"num_predict":2,"seed":1}})");
  ASSERT_EQ(gen.status, 200) << gen.body;
  EXPECT_EQ(gen.json()["done"], true);

  ASSERT_EQ(Post(port, "/api/copy", R"({"source":"m","destination":"me/copy:v1"})").status, 200);
  EXPECT_EQ(Get(port, "/api/tags").json()["models"].size(), 2u);
  EXPECT_EQ(Post(port, "/api/copy", R"({"source":"nope","destination":"x"})").status, 404);

  // Deleting m keeps the blobs me/copy:v1 still uses, and the loaded model (same weights).
  ASSERT_EQ(Delete(port, R"({"model":"m"})").status, 200);
  EXPECT_EQ(Post(port, "/api/show", R"({"model":"m"})").status, 404);
  gen = Post(port, "/api/generate", R"({"model":"me/copy:v1","prompt":"hi","stream":false,"options":{"num_predict":2}})");
  ASSERT_EQ(gen.status, 200) << gen.body;
  // The last name: the model is unloaded first, then its blobs are pruned.
  ASSERT_EQ(Delete(port, R"({"model":"me/copy:v1"})").status, 200);
  EXPECT_TRUE(Get(port, "/api/ps").json()["models"].empty());
  EXPECT_TRUE(fs::is_empty(store_ + "/blobs"));
  EXPECT_TRUE(fs::exists(gguf_));
  EXPECT_EQ(Delete(port, R"({"model":"me/copy:v1"})").status, 404);
  EXPECT_TRUE(server.alive());
}

TEST_F(StoreServerTest, BadRequestsNeverReachOutsideTheStore) {
  ServerProcess server(dir_ + "/folder", Env());
  const int port = server.port();
  std::ofstream(dir_ + "/notes.txt") << "not a model";
  std::string long_name(400, 'a');
  for (const std::string& name : {std::string("../x"), std::string("%2e%2e/x"), std::string("/etc/passwd"),
                                  std::string("a/b/c/d"), long_name, std::string("x\\y")}) {
    json create{{"model", name}, {"from", gguf_}};
    EXPECT_EQ(Post(port, "/api/create", create.dump()).status, 400) << name;
    EXPECT_EQ(Post(port, "/api/show", json{{"model", name}}.dump()).status, 400) << name;
    EXPECT_EQ(Delete(port, json{{"model", name}}.dump()).status, 400) << name;
    EXPECT_EQ(Post(port, "/api/copy", json{{"source", name}, {"destination", "ok"}}.dump()).status, 400) << name;
  }
  auto nul = Post(port, "/api/create", std::string(R"({"model":"a\u0000b","from":")") + gguf_ + "\"}");
  EXPECT_EQ(nul.status, 400) << nul.body;
  auto r = Post(port, "/api/create", json{{"model", "t"}, {"from", dir_ + "/notes.txt"}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("not a GGUF file"), std::string::npos) << r.body;
  r = Post(port, "/api/create", json{{"model", "t"}, {"from", "relative/w.gguf"}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;
  r = Post(port, "/api/create", json{{"model", "t"}, {"modelfile", "FROM " + gguf_ + "\nPARAMETER nope 1\n"}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("line 2: unknown parameter"), std::string::npos) << r.body;
  r = Post(port, "/api/create", json{{"model", "t"}, {"from", gguf_}, {"parameters", {{"temperature", "hot"}}}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;
  r = Post(port, "/api/create", json{{"model", "t"}, {"modelfile", "FROM " + gguf_ + "\nADAPTER x.gguf\n"}}.dump());
  EXPECT_NE(r.body.find("not supported"), std::string::npos) << r.body;
  // FROM something that is not a file says what it is (all of these said "no such file").
  ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
  for (const auto& [from, what] : std::vector<std::pair<std::string, std::string>>{
           {dir_ + "/folder", " is a directory, not a model file"},
           {dir_ + "/fifo", " is a FIFO (named pipe), not a regular file"},
           {"/dev/zero", " is a character device, not a regular file"}}) {
    r = Post(port, "/api/create", json{{"model", "t"}, {"from", from}}.dump());
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.json().value("error", ""), "FROM " + from + what);
  }
  r = Post(port, "/api/create", json{{"model", "t"}, {"from", dir_ + "/absent.gguf"}}.dump());
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.json().value("error", ""), "FROM " + dir_ + "/absent.gguf: no such file on the server");
  // A name's refusal says the rule (it listed '.' among the characters allowed).
  r = Post(port, "/api/create", json{{"model", ".hidden"}, {"from", gguf_}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.json().value("error", ""),
            "invalid model name \".hidden\": the model part must start with a letter, a digit or '_', not '.'");
  EXPECT_EQ(Post(port, "/api/show", "{}").status, 400);
  EXPECT_EQ(Post(port, "/api/show", "{}").json()["error"], "model is required");
  EXPECT_EQ(Post(port, "/api/show", R"({"model":"absent"})").json()["error"], "model 'absent' not found");
  EXPECT_TRUE(Get(port, "/api/tags").json()["models"].empty());
  EXPECT_FALSE(fs::exists(store_ + "/manifests"));
  EXPECT_TRUE(server.alive());
}

// Lays out an Ollama store the way Ollama writes one.
class OllamaLayout {
 public:
  explicit OllamaLayout(std::string root) : root_(std::move(root)) {}
  std::string Blob(const std::string& bytes) {
    std::string hex = store::Sha256Hex(bytes);
    fs::create_directories(root_ + "/blobs");
    std::ofstream(root_ + "/blobs/sha256-" + hex, std::ios::binary) << bytes;
    return "sha256:" + hex;
  }
  void Model(const std::string& rel, const std::string& weights, const std::vector<std::pair<std::string, std::string>>& layers) {
    json config{{"model_format", "gguf"}, {"model_family", "llama"}, {"model_families", {"llama"}},
                {"model_type", "20M"}, {"file_type", "F16"}, {"architecture", "amd64"}, {"os", "linux"}};
    std::string cfg = config.dump();
    json ls = json::array({{{"mediaType", "application/vnd.ollama.image.model"}, {"digest", Blob(weights)}, {"size", weights.size()}}});
    for (const auto& [kind, text] : layers) {
      ls.push_back({{"mediaType", "application/vnd.ollama.image." + kind}, {"digest", Blob(text)}, {"size", text.size()}});
    }
    json m{{"schemaVersion", 2},
           {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
           {"config", {{"mediaType", "application/vnd.docker.container.image.v1+json"}, {"digest", Blob(cfg)}, {"size", cfg.size()}}},
           {"layers", ls}};
    fs::create_directories(fs::path(root_ + "/manifests/" + rel).parent_path());
    std::ofstream(root_ + "/manifests/" + rel) << m.dump();
  }

 private:
  std::string root_;
};

std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> Snapshot(const std::string& root) {
  std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    out[e.path().string()] = {e.is_regular_file() ? e.file_size() : 0, e.last_write_time()};
  }
  return out;
}

// Issue 20, item 9: a model that llama.cpp cannot load is named in the error as users name it,
// never by its blob's path (sha256-...). The file: sane hyperparameters by every check resident
// makes, and a rope dimension count llama.cpp refuses (its own clean error).
TEST_F(StoreServerTest, ALoadErrorNamesTheModelNotItsBlob) {
  SynthOptions o;
  o.out_path = dir_ + "/rot.gguf";
  o.params = 3'000'000;
  o.vocab_dir = RESIDENT_VOCAB_DIR;
  o.threads = 2;
  o.metadata = {{"llama.rope.dimension_count", 7u}};
  ASSERT_TRUE(WriteSyntheticModel(o).ok());
  ServerProcess server(dir_ + "/folder", Env());
  const int port = server.port();
  ASSERT_EQ(Post(port, "/api/create", json{{"model", "rot"}, {"from", o.out_path}, {"stream", false}}.dump()).status,
            200);
  auto r = Post(port, "/api/generate", json{{"model", "rot"}, {"prompt", "hi"}, {"stream", false}}.dump());
  EXPECT_GE(r.status, 400) << r.body;
  const std::string error = r.json().value("error", "");
  EXPECT_NE(error.find("llama.cpp could not load model \"rot:latest\""), std::string::npos) << error;
  EXPECT_EQ(error.find("sha256-"), std::string::npos) << error;
  EXPECT_EQ(error.find(store_), std::string::npos) << error;
  EXPECT_TRUE(server.alive());
}

TEST_F(StoreServerTest, ServesAnOllamaStoreReadOnly) {
  std::string ollama = dir_ + "/ollama";
  OllamaLayout layout(ollama);
  std::string weights = ReadAll(gguf_);
  layout.Model("registry.ollama.ai/library/llama-go/latest", weights,
               {{"template", "{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>"},
                {"system", "You are a test."},
                {"params", R"({"stop":["<|end|>"],"temperature":0.1})"}});
  layout.Model("registry.ollama.ai/library/broken/latest", weights + "x", {});
  fs::remove(ollama + "/blobs/sha256-" + store::Sha256Hex(weights + "x"));
  auto before = Snapshot(ollama);

  ServerProcess server(dir_ + "/folder", {{"RESIDENT_MODELS", store_}, {"RESIDENT_OLLAMA_MODELS", ollama}});
  const int port = server.port();
  auto tags = Get(port, "/api/tags").json();
  ASSERT_EQ(tags["models"].size(), 1u) << tags.dump();  // the broken one is skipped
  EXPECT_EQ(tags["models"][0]["name"], "llama-go:latest");
  auto s = Post(port, "/api/show", R"({"model":"LLAMA-GO"})").json();
  EXPECT_EQ(s["system"], "You are a test.");
  EXPECT_NE(s["template_note"].get<std::string>().find("GGUF's own chat template"), std::string::npos);
  EXPECT_NE(s["modelfile"].get<std::string>().find("GGUF's own chat template"), std::string::npos);

  auto chat = Post(port, "/api/chat",
                   R"({"model":"llama-go","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":2}})");
  EXPECT_EQ(chat.status, 200) << chat.body;
  auto broken = Post(port, "/api/generate", R"({"model":"broken","prompt":"hi","stream":false})");
  EXPECT_GE(broken.status, 400);
  EXPECT_NE(broken.body.find("broken:latest"), std::string::npos) << broken.body;
  EXPECT_NE(broken.body.find("missing"), std::string::npos) << broken.body;
  EXPECT_EQ(Post(port, "/api/generate", R"({"model":"llama-go","prompt":"hi","stream":false,"options":{"num_predict":1}})").status, 200);

  // Never written: delete is refused; copying imports into resident's own store instead.
  auto del = Delete(port, R"({"model":"llama-go"})");
  EXPECT_EQ(del.status, 400);
  EXPECT_NE(del.body.find("read-only"), std::string::npos) << del.body;
  ASSERT_EQ(Post(port, "/api/copy", R"({"source":"llama-go","destination":"mine"})").status, 200);
  EXPECT_EQ(Post(port, "/api/show", R"({"model":"mine"})").json()["system"], "You are a test.");
  ASSERT_EQ(Delete(port, R"({"model":"mine"})").status, 200);
  EXPECT_EQ(Snapshot(ollama), before);
  EXPECT_TRUE(server.alive());
}

TEST_F(StoreServerTest, CliCreatesListsShowsCopiesAndRemoves) {
  std::ofstream(dir_ + "/Modelfile") << "FROM ./weights.gguf\nPARAMETER num_ctx 1024\nSYSTEM hello\n";
  std::ofstream(dir_ + "/Bad") << "FROM ./weights.gguf\n\nPARAMETER num_ctx -5\n";
  // Without a server: --local writes the store directly.
  auto local = Cli("create local -f '" + dir_ + "/Modelfile' --local", Env(), dir_);
  ASSERT_EQ(local.code, 0) << local.out;
  EXPECT_NE(local.out.find("hashing model"), std::string::npos) << local.out;
  EXPECT_NE(local.out.find("/s"), std::string::npos) << local.out;  // bytes per second
  auto bad = Cli("create bad -f '" + dir_ + "/Bad' --local", Env(), dir_);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("line 3"), std::string::npos) << bad.out;

  ServerProcess server(dir_ + "/folder", Env());
  auto env = Env();
  env["RESIDENT_HOST"] = "127.0.0.1:" + std::to_string(server.port());
  auto created = Cli("create Remote -f '" + dir_ + "/Modelfile'", env, dir_);
  ASSERT_EQ(created.code, 0) << created.out;
  EXPECT_NE(created.out.find("success"), std::string::npos) << created.out;
  auto list = Cli("list", env, dir_);
  ASSERT_EQ(list.code, 0) << list.out;
  EXPECT_NE(list.out.find("local:latest"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("remote:latest"), std::string::npos) << list.out;
  auto show = Cli("show remote", env, dir_);
  ASSERT_EQ(show.code, 0) << show.out;
  EXPECT_NE(show.out.find("num_ctx"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("llama"), std::string::npos) << show.out;
  EXPECT_EQ(Cli("show remote --system", env, dir_).out, "hello\n");
  EXPECT_EQ(Cli("cp remote other", env, dir_).code, 0);
  EXPECT_EQ(Cli("rm remote other local", env, dir_).code, 0);
  auto missing = Cli("rm remote", env, dir_);
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find("not found"), std::string::npos) << missing.out;
  auto bad_remote = Cli("create bad -f '" + dir_ + "/Bad'", env, dir_);
  EXPECT_NE(bad_remote.code, 0);
  EXPECT_NE(bad_remote.out.find("line 3"), std::string::npos) << bad_remote.out;
  server.Terminate();
  auto down = Cli("list", env, dir_);
  EXPECT_NE(down.code, 0);
  EXPECT_NE(down.out.find("could not connect"), std::string::npos) << down.out;
}

// The prompt tokens of one chat turn (deterministic: it is the rendered prompt's length).
int64_t ChatPromptTokens(int port, const std::string& model) {
  json chat{{"model", model},
            {"messages", json::array({{{"role", "user"}, {"content", "hello there"}}})},
            {"stream", false},
            {"options", {{"num_predict", 1}, {"seed", 1}}}};
  auto r = Post(port, "/api/chat", chat.dump());
  EXPECT_EQ(r.status, 200) << model << ": " << r.body;
  return r.json().value("prompt_eval_count", int64_t{-1});
}

int64_t GeneratePromptTokens(int port, const std::string& model, bool raw) {
  json gen{{"model", model}, {"prompt", "hello there"}, {"raw", raw}, {"stream", false},
           {"options", {{"num_predict", 1}, {"seed", 1}}}};
  auto r = Post(port, "/api/generate", gen.dump());
  EXPECT_EQ(r.status, 200) << model << ": " << r.body;
  return r.json().value("prompt_eval_count", int64_t{-1});
}

TEST_F(StoreServerTest, AJinjaTemplateIsUsedAndShowTellsWhatEachTemplateDoes) {
  ServerProcess server(dir_ + "/folder", Env());
  const int port = server.port();
  std::string marker;
  for (int i = 0; i < 40; ++i) marker += "zebra ";
  const std::string jinja = "{% for m in messages %}" + marker + "{{ m['content'] }}\n{% endfor %}";
  auto create = [&](const std::string& name, const std::string& tmpl) {
    json body{{"model", name}, {"from", gguf_}, {"stream", false}};
    if (!tmpl.empty()) body["template"] = tmpl;
    auto r = Post(port, "/api/create", body.dump());
    ASSERT_EQ(r.status, 200) << name << ": " << r.body;
  };
  create("plain", "");
  create("jinja", jinja);
  create("go", "{{ if .System }}{{ .System }}{{ end }}<|user|>{{ .Prompt }}");
  create("pass", "{{ .Prompt }}");

  // Jinja: the runner renders the chat with it (the marker is in the prompt); the others use
  // the GGUF's own chat template, as a model without TEMPLATE does.
  const int64_t plain = ChatPromptTokens(port, "plain");
  ASSERT_GT(plain, 0);
  EXPECT_GE(ChatPromptTokens(port, "jinja"), plain + 40);
  EXPECT_EQ(ChatPromptTokens(port, "go"), plain);
  EXPECT_EQ(ChatPromptTokens(port, "pass"), plain);
  // The pass-through template: generate sends the prompt as it is, exactly as raw does.
  EXPECT_EQ(GeneratePromptTokens(port, "pass", false), GeneratePromptTokens(port, "plain", true));
  EXPECT_LT(GeneratePromptTokens(port, "pass", false), GeneratePromptTokens(port, "plain", false));
  // The model without TEMPLATE still renders with the GGUF's template after the Jinja one ran.
  EXPECT_EQ(ChatPromptTokens(port, "plain"), plain);

  auto show = [&](const std::string& name) { return Post(port, "/api/show", json{{"model", name}}.dump()).json(); };
  json s = show("jinja");
  EXPECT_EQ(s["template"], jinja);
  EXPECT_EQ(s["chat_template"], jinja);
  EXPECT_NE(s["template_note"].get<std::string>().find("Jinja chat template"), std::string::npos) << s.dump();
  EXPECT_EQ(s["modelfile"].get<std::string>().rfind("# TEMPLATE is a Jinja", 0), 0u);
  s = show("go");
  EXPECT_NE(s["template_note"].get<std::string>().find("GGUF's own chat template"), std::string::npos) << s.dump();
  EXPECT_NE(s["chat_template"], s["template"]);
  s = show("pass");
  EXPECT_NE(s["template_note"].get<std::string>().find("sends the prompt as it is"), std::string::npos) << s.dump();
  s = show("plain");
  EXPECT_FALSE(s.contains("template_note"));
  EXPECT_FALSE(s["template"].get<std::string>().empty());  // the GGUF's own
  EXPECT_TRUE(server.alive());
}

TEST_F(StoreServerTest, FromIsNeverAFileInTheServersWorkingFolder) {
  // The server runs in a folder holding GGUF files named like models.
  const std::string cwd = dir_ + "/cwd";
  fs::create_directories(cwd);
  const std::string other = SynthModel("20M", 2);
  fs::copy_file(other, cwd + "/foo");
  fs::copy_file(other, cwd + "/nope");
  const fs::path before = fs::current_path();
  fs::current_path(cwd);
  ServerProcess server(dir_ + "/folder", Env());
  fs::current_path(before);
  const int port = server.port();

  auto r = Post(port, "/api/create", json{{"model", "bar"}, {"from", "nope"}}.dump());
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_NE(r.body.find("not found"), std::string::npos) << r.body;
  ASSERT_EQ(Post(port, "/api/create", json{{"model", "foo"}, {"from", gguf_}, {"stream", false}}.dump()).status, 200);
  r = Post(port, "/api/create", json{{"model", "bar"}, {"from", "foo"}, {"stream", false}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  r = Post(port, "/api/create", json{{"model", "baz"}, {"modelfile", "FROM foo\nSYSTEM hi\n"}, {"stream", false}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(Post(port, "/api/copy", R"({"source":"foo","destination":"qux"})").status, 200);
  // Every one of them has the model foo's weights; ./foo never entered the store.
  EXPECT_FALSE(fs::exists(store_ + "/blobs/sha256-" + *store::Sha256File(other)));
  EXPECT_TRUE(fs::exists(store_ + "/blobs/sha256-" + *store::Sha256File(gguf_)));
  auto from_line = [&](const std::string& name) {
    std::string mf = Post(port, "/api/show", json{{"model", name}}.dump()).json()["modelfile"].get<std::string>();
    size_t at = mf.find("\nFROM ");
    return mf.substr(at, mf.find('\n', at + 1) - at);
  };
  EXPECT_EQ(from_line("bar"), from_line("foo"));
  EXPECT_EQ(from_line("baz"), from_line("foo"));
  EXPECT_EQ(from_line("qux"), from_line("foo"));
  EXPECT_TRUE(server.alive());
}

TEST_F(StoreServerTest, CliResolvesARelativeFromAgainstTheModelfilesFolder) {
  // The Modelfile's folder holds the weights under a bare name; the CLI runs elsewhere.
  fs::create_directories(dir_ + "/mf");
  fs::copy_file(gguf_, dir_ + "/mf/weights");
  std::ofstream(dir_ + "/mf/Modelfile") << "FROM weights\n";
  std::ofstream(dir_ + "/mf/Missing") << "FROM sub/../gone.gguf\n";
  auto local = Cli("create rel -f '" + dir_ + "/mf/Modelfile' --local", Env(), dir_);
  ASSERT_EQ(local.code, 0) << local.out;
  EXPECT_TRUE(fs::exists(store_ + "/blobs/sha256-" + *store::Sha256File(gguf_)));
  auto missing = Cli("create gone -f '" + dir_ + "/mf/Missing' --local", Env(), dir_);
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find(dir_ + "/mf/gone.gguf"), std::string::npos) << missing.out;  // named absolute

  ServerProcess server(dir_ + "/folder", Env());
  auto env = Env();
  env["RESIDENT_HOST"] = "127.0.0.1:" + std::to_string(server.port());
  auto remote = Cli("create remote -f '" + dir_ + "/mf/Modelfile'", env, dir_);
  ASSERT_EQ(remote.code, 0) << remote.out;
  auto show = Post(server.port(), "/api/show", R"({"model":"remote"})").json();
  EXPECT_NE(show["modelfile"].get<std::string>().find("sha256-" + *store::Sha256File(gguf_)), std::string::npos);
}

TEST_F(StoreServerTest, OllamaModelsFlagServesTheStoreAndSkipsBrokenModels) {
  std::string ollama = dir_ + "/ollama";
  OllamaLayout layout(ollama);
  std::string weights = ReadAll(gguf_);
  layout.Model("registry.ollama.ai/library/good/latest", weights, {});
  layout.Model("registry.ollama.ai/library/notgguf/latest", "PK\x03\x04 a zip file, not weights", {});
  fs::create_directories(ollama + "/manifests/registry.ollama.ai/library/corrupt");
  std::ofstream(ollama + "/manifests/registry.ollama.ai/library/corrupt/latest") << "{\"schemaVersion\":2,";
  auto before = Snapshot(ollama);

  // The flag alone (no RESIDENT_OLLAMA_MODELS).
  ServerProcess server(dir_ + "/folder", Env(), RESIDENT_BINARY, {"--ollama-models", ollama});
  const int port = server.port();
  auto tags = Get(port, "/api/tags").json();
  ASSERT_EQ(tags["models"].size(), 1u) << tags.dump();
  EXPECT_EQ(tags["models"][0]["name"], "good:latest");

  for (const auto& [name, problem] : std::vector<std::pair<std::string, std::string>>{
           {"corrupt", "corrupt manifest"}, {"notgguf", "not a GGUF file"}}) {
    auto r = Post(port, "/api/generate", json{{"model", name}, {"prompt", "hi"}, {"stream", false}}.dump());
    EXPECT_GE(r.status, 400) << name;
    EXPECT_NE(r.json()["error"].get<std::string>().find("model \"" + name + ":latest\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find(problem), std::string::npos) << r.body;
    auto s = Post(port, "/api/show", json{{"model", name}}.dump());
    EXPECT_GE(s.status, 400) << name;
    EXPECT_NE(s.body.find(name + ":latest"), std::string::npos) << s.body;
  }
  auto good = Post(port, "/api/generate",
                   R"({"model":"good","prompt":"hi","stream":false,"options":{"num_predict":2}})");
  EXPECT_EQ(good.status, 200) << good.body;
  auto chat = Post(port, "/api/chat",
                   R"({"model":"good","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":1}})");
  EXPECT_EQ(chat.status, 200) << chat.body;
  EXPECT_EQ(Snapshot(ollama), before);
  EXPECT_TRUE(server.alive());
}

}  // namespace
}  // namespace resident::testing
