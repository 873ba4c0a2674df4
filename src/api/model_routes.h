// The model-management routes, over the catalog (lookups) and resident's own store (writes):
//   POST   /api/show    {"model"} → modelfile, parameters, template, details, model_info,
//                        capabilities, modified_at (+ system, license, messages when set)
//   POST   /api/create  {"model", "modelfile"} (a Modelfile's text; FROM a .gguf path on the
//                        server's machine, absolute, or an existing model) or Ollama's
//                        {"model", "from", "template", "system", "parameters", "messages",
//                        "license"}; streams {"status":...} lines ("success" last), or one
//                        object with "stream": false
//   POST   /api/copy    {"source", "destination"} → 200 empty; a source outside the store
//                        (Ollama store, folder) is imported under the new name
//   DELETE /api/delete  {"model"} → 200 empty; unloads the model first (after the requests in
//                        flight) when no other name uses its weights, then prunes its blobs
//   POST   /api/pull    {"model", "insecure", "stream"}: from its registry into the store
//   POST   /api/push    {"model", "insecure", "stream"}: from the store to its registry
//                        (both: store/model_transfer.h; progress lines as Ollama's, "success"
//                        last, or {"error"} as the last line; one object with "stream": false)
// Without a writable store (store == nullptr) create, copy, delete, pull and push answer 400.
#pragma once

#include "api/http_util.h"

namespace httplib {
class Server;
}

namespace resident::store {
class ModelStore;
}

namespace resident::api {

// Adds the routes to `http`. `ctx` and `store` must outlive the server.
void RegisterModelRoutes(httplib::Server& http, ApiContext& ctx, store::ModelStore* store);

}  // namespace resident::api
