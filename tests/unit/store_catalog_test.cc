// ModelStore (resident's store and an Ollama store served read-only), CompositeCatalog and the
// folder catalog, on real GGUF files written by the synthesizer.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <thread>

#include "store/composite_catalog.h"
#include "store/gguf_metadata.h"
#include "store/gguf_synth.h"
#include "store/model_store.h"
#include "store/sha256.h"

namespace resident::store {
namespace {
namespace fs = std::filesystem;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class StoreCatalogTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::random_device rd;
    shared_ = new fs::path(fs::temp_directory_path() /
                           ("resident-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd())));
    fs::create_directories(*shared_);
    SynthOptions o;
    o.out_path = (*shared_ / "tiny.gguf").string();
    o.params = 3'000'000;
    o.vocab_dir = RESIDENT_VOCAB_DIR;
    o.threads = 2;
    auto r = WriteSyntheticModel(o);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*shared_, ec);
    delete shared_;
  }
  void SetUp() override {
    dir_ = *shared_ / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    // A private copy so that hard links from this test's store don't touch other tests.
    gguf_ = (dir_ / "tiny.gguf").string();
    fs::copy_file(*shared_ / "tiny.gguf", gguf_);
  }

  Modelfile From(const std::string& from) {
    Modelfile mf;
    mf.from = from;
    return mf;
  }

  // Writes a blob into an Ollama-layout store by hand; returns "sha256:<hex>".
  static std::string PutBlob(const fs::path& root, const std::string& bytes) {
    std::string hex = Sha256Hex(bytes);
    fs::create_directories(root / "blobs");
    std::ofstream(root / "blobs" / ("sha256-" + hex), std::ios::binary) << bytes;
    return "sha256:" + hex;
  }
  static std::string LayerJson(const std::string& type, const std::string& digest, size_t size) {
    return R"({"mediaType":"application/vnd.ollama.image.)" + type + R"(","digest":")" + digest +
           R"(","size":)" + std::to_string(size) + "}";
  }
  // Lays out a model the way Ollama writes it: blobs, config, manifest.
  void OllamaModel(const fs::path& root, const std::string& manifest_rel, const std::string& weights,
                   const std::vector<std::pair<std::string, std::string>>& text_layers) {
    std::string wd = PutBlob(root, weights);
    std::string config = R"({"model_format":"gguf","model_family":"llama","model_families":["llama"],)"
                         R"("model_type":"3M","file_type":"F16","architecture":"amd64","os":"linux"})";
    std::string cd = PutBlob(root, config);
    std::string layers = LayerJson("model", wd, weights.size());
    for (const auto& [type, text] : text_layers) layers += "," + LayerJson(type, PutBlob(root, text), text.size());
    std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
                           R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
                           cd + R"(","size":)" + std::to_string(config.size()) + R"(},"layers":[)" + layers + "]}";
    fs::create_directories((root / "manifests" / manifest_rel).parent_path());
    std::ofstream(root / "manifests" / manifest_rel, std::ios::binary) << manifest;
  }

  // Every file under `root` with its size and mtime, to prove nothing changed.
  static std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> Snapshot(const fs::path& root) {
    std::map<std::string, std::pair<uintmax_t, fs::file_time_type>> out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      out[e.path().string()] = {e.is_regular_file() ? e.file_size() : 0, e.last_write_time()};
    }
    return out;
  }

  static fs::path* shared_;
  fs::path dir_;
  std::string gguf_;
};

fs::path* StoreCatalogTest::shared_ = nullptr;

TEST(TemplateKindTest, TellsGoPassThroughAndJinjaApart) {
  EXPECT_EQ(ClassifyTemplate(""), TemplateKind::kNone);
  for (const char* t : {"{{ .Prompt }}", "{{.Prompt}}", "{{- .Prompt -}}", " {{ .Prompt }}\n"}) {
    EXPECT_EQ(ClassifyTemplate(t), TemplateKind::kPassThrough) << t;
  }
  for (const char* t : {"{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}", "{{- range .Messages }}x{{ end }}",
                        "{{ $x := 1 }}", "<s>{{ .Prompt }}</s>", "{{ template \"x\" }}"}) {
    EXPECT_EQ(ClassifyTemplate(t), TemplateKind::kGo) << t;
  }
  for (const char* t : {"{% for m in messages %}{{ m['content'] }}{% endfor %}", "{{ messages[0]['content'] }}",
                        "{{- bos_token }}{% if add_generation_prompt %}x{% endif %}", "{{ endless }}"}) {
    EXPECT_EQ(ClassifyTemplate(t), TemplateKind::kJinja) << t;
  }
}

TEST_F(StoreCatalogTest, CreatesFromAGgufFileInOllamasLayout) {
  ModelStore store((dir_ / "store").string(), false, "store");
  Modelfile mf = From(gguf_);
  mf.parameters = {{"temperature", "0.7"}, {"stop", "</s>"}, {"stop", "<|end|>"}, {"num_ctx", "4096"}};
  mf.has_system = true;
  mf.system = "be brief";
  mf.has_template = true;
  mf.template_text = "{{ .System }} {{ .Prompt }}";
  mf.messages = {{"user", "hi"}, {"assistant", "hello"}};
  mf.licenses = {"MIT"};
  std::vector<CreateEvent> events;
  auto created = store.Create("Demo", mf, "", store, [&](const CreateEvent& e) { events.push_back(e); });
  ASSERT_TRUE(created.ok()) << created.status().message();

  fs::path manifest = dir_ / "store/manifests/registry.ollama.ai/library/demo/latest";
  ASSERT_TRUE(fs::exists(manifest));
  auto e = store.Find("DEMO:Latest");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->name, "demo:latest");
  EXPECT_EQ(e->digest, Sha256Hex(ReadAll(manifest)));
  EXPECT_EQ(e->path, (dir_ / "store/blobs").string() + "/sha256-" + *Sha256File(gguf_));
  EXPECT_EQ(fs::hard_link_count(gguf_), 2u);  // the blob is the same file
  EXPECT_EQ(e->system, "be brief");
  EXPECT_EQ(e->template_text, "{{ .System }} {{ .Prompt }}");
  EXPECT_EQ(e->template_kind, TemplateKind::kGo);
  EXPECT_EQ(e->license, "MIT");
  ASSERT_EQ(e->messages.size(), 2u);
  EXPECT_EQ(e->family, "llama");
  EXPECT_EQ(e->quantization_level, "F16");
  EXPECT_FALSE(e->parameter_size.empty());
  EXPECT_EQ(e->source, "store");
  EXPECT_FALSE(e->read_only);
  std::map<std::string, std::vector<std::string>> params;
  for (const auto& [k, v] : e->parameters) params[k].push_back(v);
  EXPECT_EQ(params["stop"], (std::vector<std::string>{"</s>", "<|end|>"}));
  EXPECT_EQ(params["temperature"], std::vector<std::string>{"0.7"});
  EXPECT_EQ(params["num_ctx"], std::vector<std::string>{"4096"});
  EXPECT_GT(e->size, fs::file_size(gguf_));

  // Progress: hashing reaches the file's size; the manifest is written last.
  uint64_t last = 0;
  for (const auto& ev : events) {
    if (ev.total) {
      EXPECT_GE(ev.completed, last);
      last = ev.completed;
    }
  }
  EXPECT_EQ(last, fs::file_size(gguf_));
  EXPECT_EQ(events.back().status, "writing manifest");
  // The params layer is Ollama's JSON object.
  auto m = ParseManifest(ReadAll(manifest));
  ASSERT_TRUE(m.ok());
  const Layer* p = m->Find(kLayerParams);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ReadAll(dir_ / "store/blobs" / ("sha256-" + p->digest.substr(7))),
            R"({"num_ctx":4096,"stop":["</s>","<|end|>"],"temperature":0.7})");
  ASSERT_EQ(store.List().size(), 1u);
}

TEST_F(StoreCatalogTest, CopyDeleteAndPruneKeepSharedBlobs) {
  ModelStore store((dir_ / "store").string(), false, "store");
  ASSERT_TRUE(store.Create("a", From(gguf_), "", store, nullptr).ok());
  ASSERT_TRUE(store.Copy("a", "ns/b:v2").ok());
  EXPECT_EQ(store.List().size(), 2u);
  EXPECT_EQ(store.Find("ns/b:v2")->path, store.Find("a")->path);
  EXPECT_EQ(store.Copy("missing", "c").code(), StatusCode::kNotFound);

  auto removed = store.Delete("a");
  ASSERT_TRUE(removed.ok()) << removed.status().message();
  EXPECT_TRUE(removed->empty());  // b still uses every blob
  EXPECT_EQ(store.Find("a").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store.Find("ns/b:v2").ok());
  std::string weights = store.Find("ns/b:v2")->path;
  removed = store.Delete("NS/B:V2");
  ASSERT_TRUE(removed.ok());
  EXPECT_NE(std::find(removed->begin(), removed->end(), weights), removed->end());
  EXPECT_TRUE(fs::is_empty(dir_ / "store/blobs"));
  EXPECT_TRUE(fs::is_empty(dir_ / "store/manifests"));  // empty folders removed too
  EXPECT_TRUE(fs::exists(gguf_));                       // the imported file itself stays
  EXPECT_EQ(store.Delete("a").status().code(), StatusCode::kNotFound);

  // A blob left by an interrupted create (no manifest) is pruned.
  PutBlob(dir_ / "store", "orphan");
  auto pruned = store.Prune();
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(pruned->size(), 1u);
}

TEST_F(StoreCatalogTest, CreateFromAnExistingModelInheritsAndOverrides) {
  ModelStore store((dir_ / "store").string(), false, "store");
  Modelfile base = From(gguf_);
  base.parameters = {{"temperature", "0.5"}, {"stop", "x"}};
  base.has_system = true;
  base.system = "base system";
  ASSERT_TRUE(store.Create("base", base, "", store, nullptr).ok());
  Modelfile derived = From("base");
  derived.parameters = {{"temperature", "0.9"}};
  auto d = store.Create("derived", derived, "", store, nullptr);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->system, "base system");
  EXPECT_EQ(d->path, store.Find("base")->path);
  EXPECT_EQ(d->parameters, (std::vector<std::pair<std::string, std::string>>{{"stop", "x"}, {"temperature", "0.9"}}));
  // A relative FROM path is resolved against the Modelfile's folder.
  ASSERT_TRUE(store.Create("rel", From("tiny.gguf"), dir_.string(), store, nullptr).ok());
}

TEST_F(StoreCatalogTest, CreateRejectsBadInputAndWritesNothing) {
  ModelStore store((dir_ / "store").string(), false, "store");
  std::ofstream(dir_ / "notes.gguf") << "just some text, not a model";
  auto r = store.Create("m", From((dir_ / "notes.gguf").string()), "", store, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a GGUF file"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("\"m:latest\""), std::string::npos) << r.status().message();

  std::string truncated = (dir_ / "trunc.gguf").string();
  std::ofstream(truncated, std::ios::binary) << ReadAll(gguf_).substr(0, 100);
  EXPECT_FALSE(store.Create("m", From(truncated), "", store, nullptr).ok());

  EXPECT_EQ(store.Create("m", From((dir_ / "missing.gguf").string()), "", store, nullptr).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store.Create("m", From("no-such-model"), "", store, nullptr).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.Create("../evil", From(gguf_), "", store, nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store.List().empty());
  EXPECT_FALSE(fs::exists(dir_ / "store/manifests"));
  EXPECT_FALSE(fs::exists(dir_ / "evil"));
}

// Issue 20, item 8: a file llama.cpp would abort on is refused at create time, naming the key,
// and nothing is written.
TEST_F(StoreCatalogTest, CreateRefusesHyperparametersLlamaCppWouldAbortOn) {
  ModelStore store((dir_ / "store").string(), false, "store");
  SynthOptions o;
  o.out_path = (dir_ / "eps.gguf").string();
  o.params = 3'000'000;
  o.vocab_dir = RESIDENT_VOCAB_DIR;
  o.threads = 2;
  o.metadata = {{"llama.attention.layer_norm_rms_epsilon", std::numeric_limits<float>::quiet_NaN()}};
  ASSERT_TRUE(WriteSyntheticModel(o).ok());
  auto r = store.Create("eps", From(o.out_path), "", store, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "cannot create \"eps:latest\": " + o.out_path +
                                      " cannot be loaded: llama.attention.layer_norm_rms_epsilon is nan: an epsilon "
                                      "must be a finite number above 0");
  EXPECT_TRUE(store.List().empty());
  EXPECT_FALSE(fs::exists(dir_ / "store/manifests"));
}

// Issue 20, item 9: FROM something that is not a regular file says what it is (a directory, a
// FIFO, a device were all "no such file").
TEST_F(StoreCatalogTest, CreateSaysWhatAFromThatIsNotAFileIs) {
  ModelStore store((dir_ / "store").string(), false, "store");
  fs::create_directories(dir_ / "a-folder");
  ASSERT_EQ(::mkfifo((dir_ / "a-fifo").c_str(), 0600), 0);
  const std::vector<std::pair<std::string, std::string>> not_files = {
      {(dir_ / "a-folder").string(), " is a directory, not a model file"},
      {(dir_ / "a-fifo").string(), " is a FIFO (named pipe), not a regular file"},
      {"/dev/zero", " is a character device, not a regular file"},
  };
  for (const auto& [from, what] : not_files) {
    auto bad = store.Create("m", From(from), "", store, nullptr);
    ASSERT_FALSE(bad.ok()) << from;
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << from;
    EXPECT_EQ(bad.status().message(), "FROM " + from + what);
  }
  auto missing = store.Create("m", From((dir_ / "missing.gguf").string()), "", store, nullptr);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "FROM " + (dir_ / "missing.gguf").string() + ": no such file");
  EXPECT_TRUE(store.List().empty());
  EXPECT_FALSE(fs::exists(dir_ / "store/manifests"));
}

TEST_F(StoreCatalogTest, NamesAndDigestsNeverReachOutsideTheStore) {
  ModelStore store((dir_ / "store").string(), false, "store");
  ASSERT_TRUE(store.Create("good", From(gguf_), "", store, nullptr).ok());
  std::ofstream(dir_ / "secret") << "x";
  for (std::string bad : std::vector<std::string>{"../secret", "../../secret", "/etc/passwd", "%2e%2e/secret", "a/b/c/d", "..",
                          std::string("good\0/../x", 10), std::string(400, 'a')}) {
    EXPECT_EQ(store.Find(bad).status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(store.Delete(bad).status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(store.Copy("good", bad).code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(store.Copy(bad, "x").code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(fs::exists(dir_ / "secret"));
  // A manifest whose digest tries to climb out is a corrupt manifest, never a path.
  fs::path m = dir_ / "store/manifests/registry.ollama.ai/library/climb/latest";
  fs::create_directories(m.parent_path());
  std::ofstream(m) << R"({"schemaVersion":2,"config":{"digest":"sha256:../../../secret","size":1},"layers":[]})";
  auto r = store.Find("climb");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("corrupt manifest"), std::string::npos);
  ASSERT_TRUE(store.Find("good").ok());
}

TEST_F(StoreCatalogTest, ServesAnOllamaStoreReadOnly) {
  fs::path root = dir_ / "ollama";
  std::string weights = ReadAll(gguf_);
  OllamaModel(root, "registry.ollama.ai/library/Llama3/latest", weights,
              {{"template", "{{ if .System }}<|system|>{{ .System }}{{ end }}{{ .Prompt }}"},
               {"system", "You are a llama."},
               {"params", R"({"stop":["<|eot_id|>","<|end|>"],"temperature":0.6,"num_ctx":8192})"},
               {"license", "LLAMA LICENSE"},
               {"license", "second"}});
  OllamaModel(root, "myhost/ns/m/v1", weights, {{"messages", R"([{"role":"user","content":"hi"}])"}});
  auto before = Snapshot(root);

  ModelStore ollama(root.string(), /*read_only=*/true, "ollama");
  auto list = ollama.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "llama3:latest");
  EXPECT_EQ(list[1].name, "myhost/ns/m:v1");
  auto e = ollama.Find("LLAMA3");  // case-insensitive, on a case-sensitive file system
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_TRUE(e->read_only);
  EXPECT_EQ(e->source, "ollama");
  EXPECT_EQ(e->template_kind, TemplateKind::kGo);
  EXPECT_EQ(e->system, "You are a llama.");
  EXPECT_EQ(e->license, "LLAMA LICENSE\n\nsecond");
  EXPECT_EQ(e->family, "llama");
  EXPECT_EQ(e->parameter_size, "3M");
  EXPECT_EQ(e->parameters, (std::vector<std::pair<std::string, std::string>>{
                               {"num_ctx", "8192"}, {"stop", "<|eot_id|>"}, {"stop", "<|end|>"}, {"temperature", "0.6"}}));
  EXPECT_TRUE(ReadGgufInfo(e->path).ok());
  EXPECT_EQ(ollama.Find("myhost/ns/m:v1")->messages.size(), 1u);

  // Never written: every write is refused and nothing on disk changes.
  EXPECT_FALSE(ollama.Create("new", From(gguf_), "", ollama, nullptr).ok());
  EXPECT_FALSE(ollama.Copy("llama3", "other").ok());
  EXPECT_FALSE(ollama.Delete("llama3").ok());
  EXPECT_FALSE(ollama.Prune().ok());
  PutBlob(dir_ / "elsewhere", "x");  // (the snapshot is of `root` only)
  EXPECT_EQ(Snapshot(root), before);

  // resident's own store can import from it (cp from an Ollama model) without touching it.
  ModelStore own((dir_ / "store").string(), false, "store");
  CompositeCatalog all({&own, &ollama});
  auto copied = own.Create("mine", From("llama3"), "", all, nullptr);
  ASSERT_TRUE(copied.ok()) << copied.status().message();
  EXPECT_EQ(copied->system, "You are a llama.");
  EXPECT_EQ(Snapshot(root), before);
}

TEST_F(StoreCatalogTest, BadModelsAreReportedByNameAndOthersKeepWorking) {
  fs::path root = dir_ / "ollama";
  std::string weights = ReadAll(gguf_);
  OllamaModel(root, "registry.ollama.ai/library/good/latest", weights, {});
  // 1. corrupt manifest
  fs::create_directories(root / "manifests/registry.ollama.ai/library/corrupt");
  std::ofstream(root / "manifests/registry.ollama.ai/library/corrupt/latest") << "{not json";
  // 2. missing weights blob
  OllamaModel(root, "registry.ollama.ai/library/missing/latest", weights + "x", {});
  fs::remove(root / "blobs" / ("sha256-" + Sha256Hex(weights + "x")));
  // 3. truncated weights (size differs from the manifest)
  std::string longer = weights + "yy";
  OllamaModel(root, "registry.ollama.ai/library/truncated/latest", longer, {});
  fs::resize_file(root / "blobs" / ("sha256-" + Sha256Hex(longer)), 1000);
  // 4. a text layer whose bytes do not match its digest
  OllamaModel(root, "registry.ollama.ai/library/tampered/latest", weights, {{"system", "original"}});
  std::ofstream(root / "blobs" / ("sha256-" + Sha256Hex("original")), std::ios::binary) << "ORIGINAL";
  // 5. weights that are not GGUF
  OllamaModel(root, "registry.ollama.ai/library/notgguf/latest", "PK\x03\x04 a zip file", {});

  // 6. an adapter layer (a projector is ignored: text still works)
  OllamaModel(root, "registry.ollama.ai/library/adapter/latest", weights, {{"adapter", "lora bytes"}});
  OllamaModel(root, "registry.ollama.ai/library/vision/latest", weights, {{"projector", "mmproj bytes"}});

  ModelStore store(root.string(), true, "ollama");
  std::map<std::string, std::string> expected = {{"adapter", "adapter layer"},
                                                 {"corrupt", "corrupt manifest"},
                                                 {"missing", "is missing"},
                                                 {"truncated", "truncated or corrupt"},
                                                 {"tampered", "digest mismatch"},
                                                 {"notgguf", "not a GGUF file"}};
  for (const auto& [name, problem] : expected) {
    auto r = store.Find(name);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_NE(r.status().message().find("model \"" + name + ":latest\""), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(problem), std::string::npos) << r.status().message();
  }
  auto list = store.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "good:latest");
  EXPECT_EQ(list[1].name, "vision:latest");
  EXPECT_TRUE(store.Find("good").ok());
}

TEST_F(StoreCatalogTest, APruneWaitsForACreateToWriteItsManifest) {
  // Two ModelStore objects on one root stand for two processes (a server pruning, `resident
  // create --local`): flock(2) excludes two open files of one process as it excludes two processes.
  const std::string root = (dir_ / "store").string();
  ModelStore creator(root, false, "store");
  ModelStore pruner(root, false, "store");
  std::atomic<bool> pruned{false};
  std::thread prune;
  auto created = creator.Create("m", From(gguf_), "", creator, [&](const CreateEvent& e) {
    if (e.status.rfind("model placed", 0) != 0) return;
    // The weights blob is in the store and no manifest names it yet: an orphan, to a prune.
    prune = std::thread([&] {
      auto r = pruner.Prune();
      EXPECT_TRUE(r.ok()) << r.status().message();
      pruned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(pruned) << "the prune ran while the create was between its blobs and its manifest";
  });
  ASSERT_TRUE(prune.joinable());
  prune.join();
  ASSERT_TRUE(created.ok()) << created.status().message();
  EXPECT_TRUE(pruned);
  auto e = pruner.Find("m");
  ASSERT_TRUE(e.ok()) << e.status().message();  // the manifest's blobs are all there
  EXPECT_TRUE(fs::exists(root + "/.lock"));
  // Delete takes the same lock (exclusive) and still works after it.
  ASSERT_TRUE(pruner.Delete("m").ok());
  EXPECT_EQ(creator.Find("m").status().code(), StatusCode::kNotFound);
}

TEST_F(StoreCatalogTest, FromIsAPathOnlyWhenAbsoluteOrInTheModelfilesFolder) {
  ModelStore store((dir_ / "store").string(), false, "store");
  ASSERT_TRUE(store.Create("foo", From(gguf_), "", store, nullptr).ok());
  // The working folder holds files named like models: they are never FROM's file.
  fs::path cwd = dir_ / "cwd";
  fs::create_directories(cwd);
  std::ofstream(cwd / "foo") << "not a model";
  fs::copy_file(gguf_, cwd / "other");
  const fs::path before = fs::current_path();
  fs::current_path(cwd);
  auto bar = store.Create("bar", From("foo"), "", store, nullptr);
  auto other = store.Create("other", From("other"), "", store, nullptr);
  auto dotted = store.Create("dotted", From("./other"), "", store, nullptr);
  fs::current_path(before);
  ASSERT_TRUE(bar.ok()) << bar.status().message();
  EXPECT_EQ(bar->path, store.Find("foo")->path);  // the model foo, not ./foo
  EXPECT_EQ(other.status().code(), StatusCode::kNotFound) << other.status().message();
  EXPECT_NE(other.status().message().find("\"other\" not found"), std::string::npos) << other.status().message();
  EXPECT_EQ(dotted.status().code(), StatusCode::kNotFound) << dotted.status().message();

  // Against base_dir (the Modelfile's folder), a relative FROM that exists there is the file,
  // with or without ./ or .gguf; one that does not is a model name.
  fs::create_directories(dir_ / "mf");
  fs::copy_file(gguf_, dir_ / "mf" / "plain");
  auto plain = store.Create("plain", From("plain"), (dir_ / "mf").string(), store, nullptr);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(plain->path, (dir_ / "store/blobs").string() + "/sha256-" + *Sha256File(gguf_));
  auto named = store.Create("named", From("foo"), (dir_ / "mf").string(), store, nullptr);
  ASSERT_TRUE(named.ok()) << named.status().message();
  EXPECT_EQ(named->path, store.Find("foo")->path);
}

TEST_F(StoreCatalogTest, ACopyingImportReportsItsOwnPass) {
  // /dev/shm is another file system than the temp folder on most machines: no hard link there.
  std::error_code ec;
  fs::path shm = fs::path("/dev/shm") / (dir_.parent_path().filename().string() + "-copy");
  if (!fs::create_directories(shm, ec) || ec) GTEST_SKIP() << "no /dev/shm";
  struct stat a {}, b {};
  ::stat(gguf_.c_str(), &a);
  ::stat(shm.c_str(), &b);
  if (a.st_dev == b.st_dev) {
    fs::remove_all(shm, ec);
    GTEST_SKIP() << "/dev/shm is on the temp folder's file system";
  }
  ModelStore store((shm / "store").string(), false, "store");
  std::vector<std::string> passes;  // the byte-progress labels, each run of one label once
  std::string placed;
  auto created = store.Create("m", From(gguf_), "", store, [&](const CreateEvent& e) {
    if (e.total && (passes.empty() || passes.back() != e.status)) passes.push_back(e.status);
    if (e.status.rfind("model placed", 0) == 0) placed = e.status;
  });
  fs::remove_all(shm, ec);
  ASSERT_TRUE(created.ok()) << created.status().message();
  if (placed.find("(copy)") != std::string::npos) {
    EXPECT_EQ(passes, (std::vector<std::string>{"hashing model", "copying model"}));
  } else {
    EXPECT_EQ(passes, std::vector<std::string>{"hashing model"}) << placed;  // a reflink copies nothing
  }
}

TEST_F(StoreCatalogTest, AMalformedInheritedParamsLayerIsAnErrorNamingTheModel) {
  fs::path root = dir_ / "ollama";
  std::string weights = ReadAll(gguf_);
  OllamaModel(root, "registry.ollama.ai/library/hot/latest", weights, {{"params", R"({"temperature":"hot"})"}});
  OllamaModel(root, "registry.ollama.ai/library/half/latest", weights, {{"params", R"({"num_ctx":1.5})"}});
  OllamaModel(root, "registry.ollama.ai/library/huge/latest", weights, {{"params", R"({"seed":1e300})"}});
  OllamaModel(root, "registry.ollama.ai/library/fine/latest", weights,
              {{"params", R"({"num_gqa":8,"temperature":0.5,"stop":["x"]})"}});
  ModelStore ollama(root.string(), /*read_only=*/true, "ollama");
  ModelStore own((dir_ / "store").string(), false, "store");
  CompositeCatalog all({&own, &ollama});
  for (const auto& [model, option] : std::vector<std::pair<std::string, std::string>>{
           {"hot", "temperature"}, {"half", "num_ctx"}, {"huge", "seed"}}) {
    auto r = own.Create("mine", From(model), "", all, nullptr);
    ASSERT_FALSE(r.ok()) << model;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("model \"" + model + ":latest\""), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(option), std::string::npos) << r.status().message();
  }
  EXPECT_TRUE(own.List().empty());
  // Options resident does not know are not inherited; the others are.
  auto fine = own.Create("mine", From("fine"), "", all, nullptr);
  ASSERT_TRUE(fine.ok()) << fine.status().message();
  EXPECT_EQ(fine->parameters, (std::vector<std::pair<std::string, std::string>>{{"stop", "x"}, {"temperature", "0.5"}}));
}

TEST_F(StoreCatalogTest, CompositeSearchesInOrderAndFolderNamesFiles) {
  fs::create_directories(dir_ / "folder");
  fs::copy_file(gguf_, dir_ / "folder/Tiny-Q.gguf");
  fs::copy_file(gguf_, dir_ / "folder/a.gguf");
  std::ofstream(dir_ / "folder/bad name.gguf") << "x";
  GgufFolderCatalog folder((dir_ / "folder").string());
  auto f = folder.Find("tiny-q");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->name, "tiny-q:latest");
  EXPECT_EQ(f->family, "llama");
  EXPECT_TRUE(f->read_only);
  EXPECT_EQ(folder.List().size(), 2u);

  ModelStore own((dir_ / "store").string(), false, "store");
  Modelfile mf = From(gguf_);
  mf.has_system = true;
  mf.system = "from the store";
  ASSERT_TRUE(own.Create("a", mf, "", own, nullptr).ok());
  CompositeCatalog all({&own, &folder});
  EXPECT_EQ(all.Find("a")->source, "store");  // the store hides the folder's a.gguf
  EXPECT_EQ(all.Find("tiny-q")->source, "folder");
  auto names = all.List();
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0].source, "store");
  auto missing = all.Find("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "model \"nope\" not found, try pulling it first");
  EXPECT_EQ(all.Find("../x").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace resident::store
