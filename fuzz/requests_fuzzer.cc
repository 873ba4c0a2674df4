// Request bodies of every route that takes one: Ollama's generate, chat, embed, embeddings,
// show, create, copy and delete (api/requests) and the OpenAI-compatible chat, completions and
// embeddings (api/openai_requests): JSON into native structs. What decodes is then resolved
// against a model's Modelfile parameters, as a handler does.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/openai_requests.h"
#include "api/requests.h"
#include "fuzz_check.h"

using namespace resident;

namespace {

const api::RequestDefaults kDefaults;
const std::vector<std::pair<std::string, std::string>> kParameters = {
    {"temperature", "0.7"}, {"num_ctx", "4096"}, {"stop", "<|im_end|>"}, {"use_mmap", "false"}};

void Resolve(const api::ModelOptions& options) {
  Result<api::ModelOptions> resolved = api::ResolveOptions(options, kParameters, kDefaults);
  // The request's options decoded once already: laid over valid parameters they decode again.
  FUZZ_CHECK(resolved.ok(), "options that decoded do not resolve: %s", resolved.status().message().c_str());
  FUZZ_CHECK(resolved->load.n_ctx >= 1 && resolved->load.n_batch >= 1, "resolved sizes out of range");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto g = api::DecodeGenerate(body, kDefaults); g.ok()) {
    FUZZ_CHECK(!g->model.empty(), "generate without a model decoded");
    Resolve(g->options);
    (void)api::ClassifyTemplate(g->template_text);
  }
  if (auto c = api::DecodeChat(body, kDefaults); c.ok()) {
    FUZZ_CHECK(!c->model.empty(), "chat without a model decoded");
    Resolve(c->options);
  }
  for (bool legacy : {false, true}) {
    if (auto e = api::DecodeEmbed(body, kDefaults, legacy); e.ok()) Resolve(e->options);
  }
  if (auto s = api::DecodeShow(body); s.ok()) FUZZ_CHECK(!s->model.empty(), "show without a model decoded");
  if (auto d = api::DecodeDelete(body); d.ok()) FUZZ_CHECK(!d->model.empty(), "delete without a model decoded");
  if (auto c = api::DecodeCopy(body); c.ok()) {
    FUZZ_CHECK(!c->source.empty() && !c->destination.empty(), "copy without source or destination decoded");
  }
  if (auto c = api::DecodeCreate(body); c.ok()) {
    FUZZ_CHECK(!c->model.empty() && !c->modelfile.from.empty(), "create without a model or FROM decoded");
  }
  if (auto c = api::DecodeOpenAiChat(body, kDefaults); c.ok()) {
    FUZZ_CHECK(!c->model.empty() && !c->messages.empty(), "OpenAI chat without a model or messages decoded");
    Resolve(c->options);
  }
  if (auto c = api::DecodeOpenAiCompletion(body, kDefaults); c.ok()) {
    FUZZ_CHECK(!c->model.empty(), "OpenAI completion without a model decoded");
    Resolve(c->options);
  }
  if (auto e = api::DecodeOpenAiEmbedding(body); e.ok()) {
    FUZZ_CHECK(!e->model.empty() && !e->inputs.empty(), "OpenAI embedding without a model or input decoded");
  }
  return 0;
}
