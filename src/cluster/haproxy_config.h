// `resident cluster haproxy`: the HAProxy configuration (Debian 12's haproxy 2.6) that puts several
// resident nodes behind one address with model-affine routing (docs/cluster.md).
//
// Every request that names a model (the JSON body's "model", else "name", as Ollama's and
// OpenAI's routes carry it; the path of GET /v1/models/<model>) goes to the node that model hashes
// to: HAProxy buffers the body (`option http-buffer-request`), reads the name (`json_query`),
// normalizes it as resident's store does (lowercase, "registry.ollama.ai/" and "library/"
// dropped, ":latest" added when there is no tag) so that every spelling of one model lands on one
// node, and balances on it with consistent hashing and bounded load (`hash-type consistent`,
// `hash-balance-factor`): a model stays on its node until that node carries more than its share of
// the requests in flight, or fails its health check (then only that node's models move). Routes
// without a model (/api/tags, /api/ps, /api/version, /v1/models, GET /) go to the healthy node
// with the fewest connections. Answers stream through as they come (NDJSON and SSE are never
// buffered), and headers pass unchanged, so an API key works end to end. A body larger than the
// buffer (`max_body`) cannot be read whole and goes to any node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace resident::cluster {

struct HaproxyOptions {
  std::string listen;               // HOST:PORT HAProxy binds
  std::vector<std::string> nodes;   // HOST:PORT of each resident node
  bool round_robin = false;         // no model affinity (to compare against): every request round-robin
  int check_interval_ms = 1000;     // health checks: GET / every this often; 2 failures mark a node down
  int balance_factor = 150;         // hash-balance-factor: a node takes at most this % of the average load
  uint64_t max_body = 256 * 1024;   // the largest body whose model can be read (tune.bufsize: this + 32 KiB)
};

// The configuration text. Errors: kInvalidArgument for a listen address or node that is not
// HOST:PORT (host: letters, digits, '.', '-', or [IPv6]; `*` for --listen only; port 1-65535), no
// node, the same node twice, a balance factor outside 100-1000 (0: off), a check interval below
// 100 ms, a max_body outside 16 KiB - 16 MiB.
Result<std::string> HaproxyConfig(const HaproxyOptions& options);

}  // namespace resident::cluster
