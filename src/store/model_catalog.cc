#include "store/model_catalog.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <optional>

#include "core/bytes.h"
#include "store/gguf_metadata.h"
#include "store/model_name.h"

namespace resident::store {
namespace fs = std::filesystem;

namespace {

WallTime ToWall(fs::file_time_type t) {
  return std::chrono::time_point_cast<WallTime::duration>(std::chrono::file_clock::to_sys(t));
}

// Fills family / parameter size / quantization from the GGUF header; a file that cannot be read
// keeps empty details (the load reports the problem).
void FillDetails(ModelEntry& m) {
  auto info = ReadGgufInfo(m.path);
  if (!info.ok()) return;
  m.family = info->architecture;
  m.parameter_size = info->n_params ? FormatCount(info->n_params) : "";
  m.quantization_level = info->file_type_name == "unknown" ? "" : info->file_type_name;
}

}  // namespace

TemplateKind ClassifyTemplate(std::string_view t) {
  if (t.empty()) return TemplateKind::kNone;
  if (t.find("{%") != std::string_view::npos) return TemplateKind::kJinja;
  std::string compact;
  for (char ch : t) {
    if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != '-') compact += ch;
  }
  if (compact == "{{.Prompt}}") return TemplateKind::kPassThrough;
  // Each action's first word, after "{{", an optional trim marker and spaces.
  for (size_t at = t.find("{{"); at != std::string_view::npos; at = t.find("{{", at + 2)) {
    size_t i = at + 2;
    if (i < t.size() && t[i] == '-') ++i;
    while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
    if (i < t.size() && (t[i] == '.' || t[i] == '$')) return TemplateKind::kGo;
    std::string_view rest = t.substr(i);
    for (std::string_view keyword : {"if", "range", "with", "end", "else", "template", "block", "define"}) {
      if (rest.starts_with(keyword) &&
          (rest.size() == keyword.size() || !std::isalnum(static_cast<unsigned char>(rest[keyword.size()])))) {
        return TemplateKind::kGo;
      }
    }
  }
  return TemplateKind::kJinja;
}

Result<std::string> NormalizeModelName(std::string_view name) {
  auto n = ParseModelName(name);
  if (!n.ok()) return n.status();
  return n->Display();
}

Status ModelNotFound(std::string_view name) {
  return Status::NotFound("model \"" + std::string(name) + "\" not found, try pulling it first");
}

// The model a folder entry stands for, or nullopt when the entry is not a .gguf file with a
// valid model name.
static std::optional<ModelEntry> FolderEntry(const fs::directory_entry& entry) {
  std::error_code fec;
  if (!entry.is_regular_file(fec) || entry.path().extension() != ".gguf") return std::nullopt;
  auto name = NormalizeModelName(entry.path().stem().string());
  if (!name.ok()) {
    spdlog::debug("skipping {}: {}", entry.path().string(), name.status().message());
    return std::nullopt;
  }
  ModelEntry m;
  m.name = *name;
  m.path = entry.path().string();
  m.size = entry.file_size(fec);
  m.modified = ToWall(entry.last_write_time(fec));
  m.read_only = true;
  m.source = "folder";
  FillDetails(m);
  return m;
}

Result<ModelEntry> GgufFolderCatalog::Find(std::string_view name) const {
  auto normalized = NormalizeModelName(name);
  if (!normalized.ok()) return normalized.status();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::error_code fec;
    if (entry.path().extension() != ".gguf") continue;
    auto n = NormalizeModelName(entry.path().stem().string());
    if (!n.ok() || *n != *normalized) continue;
    if (auto m = FolderEntry(entry)) return std::move(*m);
  }
  return ModelNotFound(name);
}

std::vector<ModelEntry> GgufFolderCatalog::List() const {
  std::vector<ModelEntry> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (auto m = FolderEntry(entry)) out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

}  // namespace resident::store
