#include "cli/config.h"

#include <charconv>
#include <cstdlib>

namespace resident::cli {

std::optional<std::string> EnvFirst(std::initializer_list<const char*> names) {
  for (const char* n : names) {
    const char* v = std::getenv(n);
    if (v != nullptr && *v != '\0') return std::string(v);
  }
  return std::nullopt;
}

Result<HostPort> ParseHostPort(std::string_view value) {
  std::string_view v = value;
  while (!v.empty() && (v.front() == ' ' || v.front() == '"' || v.front() == '\'')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '"' || v.back() == '\'' || v.back() == '/')) v.remove_suffix(1);
  for (std::string_view scheme : {"http://", "https://"}) {
    if (v.substr(0, scheme.size()) == scheme) v.remove_prefix(scheme.size());
  }
  HostPort hp;
  std::string_view host = v, port;
  if (!v.empty() && v.front() == '[') {  // [ipv6]:port
    size_t close = v.find(']');
    if (close == std::string_view::npos) return Status::InvalidArgument("invalid host \"" + std::string(value) + "\"");
    host = v.substr(1, close - 1);
    if (close + 1 < v.size() && v[close + 1] == ':') port = v.substr(close + 2);
  } else if (size_t colon = v.rfind(':'); colon != std::string_view::npos && v.find(':') == colon) {
    host = v.substr(0, colon);
    port = v.substr(colon + 1);
  }
  if (!host.empty()) hp.host = std::string(host);
  if (!port.empty()) {
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p < 0 || p > 65535) {
      return Status::InvalidArgument("invalid port in host \"" + std::string(value) + "\"");
    }
    hp.port = p;
  }
  return hp;
}

Result<HostPort> HostFromEnv() {
  auto v = EnvFirst({"RESIDENT_HOST", "OLLAMA_HOST"});
  if (!v) return HostPort{};
  return ParseHostPort(*v);
}

std::optional<std::string> ApiKeyFromEnv() { return EnvFirst({"RESIDENT_API_KEY"}); }

Result<int> IntFromEnv(const char* resident_name, const char* ollama_name, int fallback, int min) {
  const char* used = resident_name;
  auto v = EnvFirst({resident_name});
  if (!v && ollama_name) {
    v = EnvFirst({ollama_name});
    used = ollama_name;
  }
  if (!v) return fallback;
  int n = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || ptr != v->data() + v->size() || n < min) {
    return Status::InvalidArgument(std::string(used) + "=\"" + *v + "\" is not an integer of at least " +
                                   std::to_string(min));
  }
  return n;
}

}  // namespace resident::cli
