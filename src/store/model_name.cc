#include "store/model_name.h"

#include <string>
#include <vector>

namespace resident::store {
namespace {

constexpr size_t kMaxNameLength = 350;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A character as a message shows it: 'x', or its byte value when it is not printable.
std::string ShownChar(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) return "byte 0x" + std::string(1, "0123456789abcdef"[u >> 4]) + "0123456789abcdef"[u & 15];
  return std::string("'") + c + "'";
}

// What is wrong with part `what` ("the model part") of a name: "" when it is [a-z0-9_][a-z0-9._-]*
// (no leading '_' unless allowed), at most `max` characters, without "..". The rule is said the
// way it is checked: a first character, the characters after it, "..", the length.
std::string PartProblem(std::string_view s, size_t max, const char* what, bool allow_leading_underscore = true) {
  if (s.empty()) return std::string(what) + " is empty";
  if (s.size() > max) return std::string(what) + " is longer than " + std::to_string(max) + " characters";
  if (!(IsAlnum(s[0]) || (allow_leading_underscore && s[0] == '_'))) {
    return std::string(what) + " must start with " +
           (allow_leading_underscore ? "a letter, a digit or '_'" : "a letter or a digit") + ", not " + ShownChar(s[0]);
  }
  for (char c : s) {
    if (!(IsAlnum(c) || c == '_' || c == '-' || c == '.')) {
      return std::string(what) + " may only use letters, digits, '_', '-' and '.' after its first character, not " +
             ShownChar(c);
    }
  }
  if (s.find("..") != std::string_view::npos) return std::string(what) + " must not contain \"..\"";
  return "";
}

// What is wrong with a host ("name" or "name:port"); "" when nothing.
std::string HostProblem(std::string_view s) {
  size_t colon = s.find(':');
  std::string_view host = s.substr(0, colon);
  if (std::string p = PartProblem(host, 255, "the host", false); !p.empty()) return p;
  if (colon == std::string_view::npos) return "";
  std::string_view port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5) return "the host's port must be 1 to 5 digits";
  for (char c : port) {
    if (c < '0' || c > '9') return "the host's port must be 1 to 5 digits";
  }
  return "";
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

  if (std::string p = PartProblem(n.model, 80, "the model part"); !p.empty()) return Invalid(raw, p);
  if (std::string p = PartProblem(n.tag, 80, "the tag"); !p.empty()) return Invalid(raw, p);
  if (std::string p = PartProblem(n.ns, 80, "the namespace"); !p.empty()) return Invalid(raw, p);
  if (std::string p = HostProblem(n.host); !p.empty()) return Invalid(raw, p);
  // The limit is on the name as it is shown and typed back (Display: the tag added, the default
  // host and namespace dropped); otherwise a name could be listed that does not parse again.
  if (n.Display().size() > kMaxNameLength) return Invalid(raw, "longer than 350 characters with its tag");
  return n;
}

}  // namespace resident::store
