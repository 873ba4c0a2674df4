// Which web pages may call the API from a browser (CORS), decided as Ollama decides it: an
// allow-list of origins (RESIDENT_ORIGINS, else OLLAMA_ORIGINS) to which the local origins are
// always added. A request whose Origin is not on the list is refused (403), preflight or not;
// a request without an Origin header (curl, the CLI, SDKs outside a browser) is not a CORS
// request and is unaffected.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace resident::api {

// True when `origin` matches `pattern`, compared case-insensitively. A pattern holds at most one
// `*`, which stands for any run of characters, as gin-contrib/cors (Ollama's CORS layer) does:
// "http://localhost:*" matches "http://localhost:3000", "*" matches everything, and a pattern
// without `*` matches only itself.
bool OriginMatches(std::string_view pattern, std::string_view origin);

// The comma-separated list of OLLAMA_ORIGINS, entries trimmed of spaces, empty ones dropped.
std::vector<std::string> ParseOriginList(std::string_view csv);

// Ollama's default origins: http(s)://localhost, 127.0.0.1 and 0.0.0.0 with or without any port,
// and the schemes of desktop apps and editors (app://, file://, tauri://, vscode-webview://,
// vscode-file://).
std::vector<std::string> DefaultOrigins();

class OriginPolicy {
 public:
  // The defaults plus `extra` (from the environment). Constant after construction.
  explicit OriginPolicy(std::vector<std::string> extra = {});

  // True when a browser page from `origin` may call the API.
  bool Allows(std::string_view origin) const;
  // True when the list holds "*": every origin is allowed, and answers say
  // `Access-Control-Allow-Origin: *` instead of echoing the origin.
  bool allows_all() const { return allow_all_; }
  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  std::vector<std::string> patterns_;
  bool allow_all_ = false;
};

// What the preflight answer allows: the methods of DefaultConfig in gin-contrib/cors and the
// request headers Ollama allows (Authorization, Content-Type, and those the OpenAI and Ollama
// JavaScript clients send).
inline constexpr std::string_view kCorsAllowMethods = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS";
inline constexpr std::string_view kCorsAllowHeaders =
    "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, OpenAI-Organization, "
    "OpenAI-Project, x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, "
    "x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, "
    "x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, "
    "x-stainless-timeout";
inline constexpr std::string_view kCorsMaxAgeSeconds = "43200";  // 12 h, as gin-contrib/cors

}  // namespace resident::api
