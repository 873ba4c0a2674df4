#include "api/cors.h"

#include <algorithm>
#include <cctype>

namespace resident::api {
namespace {

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

bool OriginMatches(std::string_view pattern, std::string_view origin) {
  size_t star = pattern.find('*');
  if (star == std::string_view::npos) return EqualsNoCase(pattern, origin);
  std::string_view prefix = pattern.substr(0, star);
  std::string_view suffix = pattern.substr(star + 1);
  if (suffix.find('*') != std::string_view::npos) return false;  // one wildcard at most, as gin-contrib/cors
  return origin.size() >= prefix.size() + suffix.size() && EqualsNoCase(origin.substr(0, prefix.size()), prefix) &&
         EqualsNoCase(origin.substr(origin.size() - suffix.size()), suffix);
}

std::vector<std::string> ParseOriginList(std::string_view csv) {
  std::vector<std::string> out;
  while (!csv.empty()) {
    size_t comma = csv.find(',');
    std::string_view item = Trim(csv.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    csv.remove_prefix(comma + 1);
  }
  return out;
}

std::vector<std::string> DefaultOrigins() {
  std::vector<std::string> out;
  for (const char* host : {"localhost", "127.0.0.1", "0.0.0.0"}) {
    for (const char* scheme : {"http://", "https://"}) {
      out.push_back(std::string(scheme) + host);
      out.push_back(std::string(scheme) + host + ":*");
    }
  }
  for (const char* app : {"app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"}) {
    out.emplace_back(app);
  }
  return out;
}

OriginPolicy::OriginPolicy(std::vector<std::string> extra) : patterns_(std::move(extra)) {
  for (std::string& d : DefaultOrigins()) patterns_.push_back(std::move(d));
  allow_all_ = std::find(patterns_.begin(), patterns_.end(), "*") != patterns_.end();
}

bool OriginPolicy::Allows(std::string_view origin) const {
  if (allow_all_) return true;
  return std::any_of(patterns_.begin(), patterns_.end(),
                     [&](const std::string& p) { return OriginMatches(p, origin); });
}

}  // namespace resident::api
