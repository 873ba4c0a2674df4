#include "store/model_catalog.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace resident::store {
namespace fs = std::filesystem;

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

WallTime ToWall(fs::file_time_type t) {
  return std::chrono::time_point_cast<WallTime::duration>(std::chrono::file_clock::to_sys(t));
}

}  // namespace

Result<std::string> NormalizeModelName(std::string_view name) {
  if (name.empty()) return Status::InvalidArgument("model is required");
  if (name.size() > 256) return Status::InvalidArgument("invalid model name: longer than 256 characters");
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '/' || c == '\\') {
      return Status::InvalidArgument("invalid model name \"" + std::string(name) + "\"");
    }
  }
  std::string n = Lower(name);
  size_t colon = n.rfind(':');
  std::string base = colon == std::string::npos ? n : n.substr(0, colon);
  std::string tag = colon == std::string::npos ? "latest" : n.substr(colon + 1);
  if (base.empty() || tag.empty() || base == "." || base == ".." || base.find("..") != std::string::npos ||
      base.front() == '.' || tag.find(':') != std::string::npos) {
    return Status::InvalidArgument("invalid model name \"" + std::string(name) + "\"");
  }
  return base + ":" + tag;
}

Result<ModelEntry> GgufFolderCatalog::Find(std::string_view name) const {
  auto normalized = NormalizeModelName(name);
  if (!normalized.ok()) return normalized.status();
  for (ModelEntry& e : List()) {
    if (e.name == *normalized) return std::move(e);
  }
  return Status::NotFound("model \"" + std::string(name) + "\" not found, try pulling it first");
}

std::vector<ModelEntry> GgufFolderCatalog::List() const {
  std::vector<ModelEntry> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::error_code fec;
    if (!entry.is_regular_file(fec) || entry.path().extension() != ".gguf") continue;
    auto name = NormalizeModelName(entry.path().stem().string());
    if (!name.ok()) continue;
    ModelEntry m;
    m.name = *name;
    m.path = entry.path().string();
    m.size = entry.file_size(fec);
    m.modified = ToWall(entry.last_write_time(fec));
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

}  // namespace resident::store
