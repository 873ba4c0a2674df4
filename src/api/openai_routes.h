// The OpenAI-compatible routes, as Ollama serves them:
//   POST /v1/chat/completions   (SSE when "stream": chunks, then "data: [DONE]";
//                                stream_options.include_usage adds a last chunk with usage)
//   POST /v1/completions        (the same for a plain prompt, `suffix` included)
//   POST /v1/embeddings         (encoding_format "float" or "base64": little-endian float32)
//   GET  /v1/models, GET /v1/models/{id}
// Errors use OpenAI's shape {"error":{"message","type","param":null,"code":null}}, with type
// invalid_request_error (400), not_found_error (404) or api_error (otherwise).
// Unlike Ollama, a `keep_alive` field (Ollama's syntax) is honoured here too; without it the
// server's default applies on a fresh load and a loaded model keeps its current duration.
// The request's sampling fields map onto Ollama options: max_tokens / max_completion_tokens ->
// num_predict, temperature, top_p, seed, stop, frequency_penalty, presence_penalty; a Modelfile's
// parameters apply underneath them. response_format json_object / json_schema constrain the
// output as Ollama's `format` does.
#pragma once

#include "api/http_util.h"

namespace httplib {
class Server;
}

namespace resident::api {

// Adds the /v1 routes to `http`. `ctx` must outlive the server.
void RegisterOpenAiRoutes(httplib::Server& http, ApiContext& ctx);

}  // namespace resident::api
