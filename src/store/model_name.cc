#include "store/model_name.h"

#include <vector>

namespace resident::store {
namespace {

constexpr size_t kMaxNameLength = 350;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z0-9_][a-z0-9._-]*, at most `max` characters, no "..".
bool ValidPart(std::string_view s, size_t max, bool allow_leading_underscore = true) {
  if (s.empty() || s.size() > max) return false;
  if (!(IsAlnum(s[0]) || (allow_leading_underscore && s[0] == '_'))) return false;
  for (char c : s) {
    if (!(IsAlnum(c) || c == '_' || c == '-' || c == '.')) return false;
  }
  return s.find("..") == std::string_view::npos;
}

bool ValidHost(std::string_view s) {
  size_t colon = s.find(':');
  std::string_view host = s.substr(0, colon);
  if (!ValidPart(host, 255, false)) return false;
  if (colon == std::string_view::npos) return true;
  std::string_view port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Status Invalid(std::string_view name, const std::string& why) {
  std::string shown(name.substr(0, 100));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (name.size() > 100) shown += "...";
  return Status::InvalidArgument("invalid model name \"" + shown + "\": " + why);
}

}  // namespace

std::string ModelName::Display() const {
  std::string out;
  if (host != kDefaultHost) out = host + "/" + ns + "/";
  else if (ns != kDefaultNamespace) out = ns + "/";
  return out + model + ":" + tag;
}

std::string ModelName::ManifestRelPath() const { return host + "/" + ns + "/" + model + "/" + tag; }

Result<ModelName> ParseModelName(std::string_view raw) {
  if (raw.empty()) return Status::InvalidArgument("model is required");
  if (raw.size() > kMaxNameLength) return Invalid(raw, "longer than 350 characters");
  std::string s;
  s.reserve(raw.size());
  for (char c : raw) s += Lower(c);

  ModelName n;
  // The tag is after the last ':' that follows the last '/' (a host may carry ":port").
  size_t slash = s.rfind('/');
  size_t colon = s.rfind(':');
  std::string path = s;
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    n.tag = s.substr(colon + 1);
    path = s.substr(0, colon);
  }
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t p = path.find('/', start);
    parts.push_back(path.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  if (parts.size() > 3) return Invalid(raw, "too many '/' (expected [host/][namespace/]model[:tag])");
  n.model = parts.back();
  if (parts.size() >= 2) n.ns = parts[parts.size() - 2];
  if (parts.size() == 3) n.host = parts[0];

  if (!ValidPart(n.model, 80)) return Invalid(raw, "the model part may use letters, digits, '_', '-' and '.'");
  if (!ValidPart(n.tag, 80)) return Invalid(raw, "the tag may use letters, digits, '_', '-' and '.'");
  if (!ValidPart(n.ns, 80)) return Invalid(raw, "the namespace may use letters, digits, '_', '-' and '.'");
  if (!ValidHost(n.host)) return Invalid(raw, "bad host");
  // The limit is on the name as it is shown and typed back (Display: the tag added, the default
  // host and namespace dropped); otherwise a name could be listed that does not parse again.
  if (n.Display().size() > kMaxNameLength) return Invalid(raw, "longer than 350 characters with its tag");
  return n;
}

}  // namespace resident::store
