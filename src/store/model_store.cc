#include "store/model_store.h"

#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "core/bytes.h"
#include "core/option_table.h"
#include "store/gguf_checks.h"
#include "store/gguf_metadata.h"
#include "store/store_lock.h"

namespace resident::store {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxManifestBytes = 1u << 20;  // kMaxTextLayerBytes: modelfile.h

WallTime ToWall(fs::file_time_type t) {
  return std::chrono::time_point_cast<WallTime::duration>(std::chrono::file_clock::to_sys(t));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<std::string> ReadSmallFile(const std::string& path, uint64_t max) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) return Status::NotFound("cannot read " + path + ": " + ec.message());
  if (size > max) return Status::Internal(path + " is too large");
  std::ifstream in(path, std::ios::binary);
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) return Status::Internal("cannot read " + path);
  return bytes;
}

// The params layer: {"stop":["a","b"],"temperature":0.7,...}, from validated parameters
// (ValidateParameter): never throws.
std::string ParamsJson(const std::vector<std::pair<std::string, std::string>>& parameters) {
  json j = json::object();
  for (const auto& [k, v] : parameters) {
    switch (ParameterTypeOf(k)) {
      case ParameterType::kString:
        if (!j.contains(k)) j[k] = json::array();
        j[k].push_back(v);
        break;
      case ParameterType::kInt: j[k] = static_cast<int64_t>(std::strtoll(v.c_str(), nullptr, 10)); break;
      case ParameterType::kFloat: j[k] = std::strtod(v.c_str(), nullptr); break;
      case ParameterType::kBool: j[k] = v == "true"; break;
    }
  }
  return j.dump();
}

std::string NumberText(const json& v) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
    return fmt::format("{}", d);
  }
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

Result<std::vector<std::pair<std::string, std::string>>> ParseParamsJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Internal("the params layer is not a JSON object");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : j.items()) {
    if (v.is_array()) {
      for (const json& x : v) out.emplace_back(k, NumberText(x));
    } else {
      out.emplace_back(k, NumberText(v));
    }
  }
  return out;
}

std::string MessagesJson(const std::vector<std::pair<std::string, std::string>>& messages) {
  json j = json::array();
  for (const auto& [role, content] : messages) j.push_back(json{{"role", role}, {"content", content}});
  return j.dump();
}

Result<std::vector<std::pair<std::string, std::string>>> ParseMessagesJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return Status::Internal("the messages layer is not a JSON array");
  std::vector<std::pair<std::string, std::string>> out;
  for (const json& m : j) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) continue;
    out.emplace_back(m["role"].get<std::string>(),
                     m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "");
  }
  return out;
}

// Atomic small write: temp file in the same folder, fsync, rename.
Status WriteFileAtomic(const std::string& path, const std::string& bytes) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return Status::Internal("cannot create " + fs::path(path).parent_path().string() + ": " + ec.message());
  std::string tmp = fs::path(path).parent_path().string() + "/.tmp-" + std::to_string(::getpid()) + "-" +
                    fs::path(path).filename().string();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      fs::remove(tmp, ec);
      return Status::Internal("cannot write " + tmp);
    }
  }
  if (FILE* f = std::fopen(tmp.c_str(), "rb")) {
    ::fsync(fileno(f));
    std::fclose(f);
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return Status::Internal("cannot write " + path + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace

ModelStore::ModelStore(std::string root, bool read_only, std::string source)
    : root_(std::move(root)), read_only_(read_only), source_(std::move(source)), blobs_(root_) {}

Status ModelStore::CheckWritable() const {
  if (read_only_) return Status::InvalidArgument("the model store at " + root_ + " is read-only");
  return Status::Ok();
}

Result<std::string> ModelStore::ManifestPath(const ModelName& name) const {
  // Every component was validated by ParseModelName: no "/", no "..".
  std::string dir = root_ + "/manifests";
  std::error_code ec;
  for (const std::string& part : {name.host, name.ns, name.model, name.tag}) {
    std::string exact = dir + "/" + part;
    if (fs::exists(exact, ec)) {
      dir = exact;
      continue;
    }
    // Ollama's own store may keep the case a name was pulled with.
    std::string found;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (Lower(e.path().filename().string()) == part) {
        found = e.path().string();
        break;
      }
    }
    if (found.empty()) return ModelNotFound(name.Display());
    dir = found;
  }
  if (!fs::is_regular_file(dir, ec)) return ModelNotFound(name.Display());
  return dir;
}

Result<ModelEntry> ModelStore::LoadEntry(const ModelName& name, const std::string& manifest_path) const {
  const std::string shown = name.Display();
  auto fail = [&](const std::string& problem) { return Status::Internal("model \"" + shown + "\": " + problem); };
  auto bytes = ReadSmallFile(manifest_path, kMaxManifestBytes);
  if (!bytes.ok()) return fail(bytes.status().message());
  auto manifest = ParseManifest(*bytes);
  if (!manifest.ok()) return fail(manifest.status().message() + " (" + manifest_path + ")");

  ModelEntry e;
  e.name = shown;
  e.digest = Sha256Hex(*bytes);
  e.size = manifest->TotalSize();
  e.read_only = read_only_;
  e.source = source_;
  std::error_code ec;
  e.modified = ToWall(fs::last_write_time(manifest_path, ec));

  const Layer* model = manifest->Find(kLayerModel);
  if (!model) return fail("the manifest has no model layer");
  e.path = *blobs_.PathFor(model->digest);
  auto size = fs::file_size(e.path, ec);
  if (ec) return fail("the weights blob " + model->digest + " is missing");
  if (size != model->size) {
    return fail(fmt::format("the weights blob {} has {} bytes but the manifest says {} (truncated or corrupt)",
                            model->digest, size, model->size));
  }
  {
    std::ifstream in(e.path, std::ios::binary);
    char magic[4] = {};
    if (!in.read(magic, 4) || std::string_view(magic, 4) != "GGUF") {
      return fail("the weights blob " + model->digest + " is not a GGUF file");
    }
  }

  auto text = [&](const Layer& l) -> Result<std::string> {
    auto r = blobs_.ReadVerified(l.digest, kMaxTextLayerBytes);
    if (!r.ok()) return fail(r.status().message());
    return r;
  };
  auto config = text(manifest->config);
  if (!config.ok()) return config.status();
  auto cfg = ParseConfig(*config);
  if (!cfg.ok()) return fail(cfg.status().message());
  e.family = cfg->model_family;
  e.parameter_size = cfg->model_type;
  e.quantization_level = cfg->file_type;

  for (const Layer& l : manifest->layers) {
    if (l.media_type == kLayerModel) continue;
    // An adapter changes what the weights compute: refuse rather than answer differently. A
    // vision projector only adds image input, which resident does not take: text works without it.
    if (l.media_type == kLayerAdapter) return fail("has an adapter layer, which resident does not support");
    if (l.media_type == kLayerProjector) continue;
    bool known = l.media_type == kLayerTemplate || l.media_type == kLayerSystem || l.media_type == kLayerParams ||
                 l.media_type == kLayerMessages || l.media_type == kLayerLicense;
    if (!known) continue;  // other layer kinds are ignored
    auto t = text(l);
    if (!t.ok()) return t.status();
    if (l.media_type == kLayerTemplate) {
      e.template_text = *t;
      e.template_kind = ClassifyTemplate(*t);
    } else if (l.media_type == kLayerSystem) {
      e.system = *t;
    } else if (l.media_type == kLayerParams) {
      auto p = ParseParamsJson(*t);
      if (!p.ok()) return fail(p.status().message());
      e.parameters = std::move(*p);
    } else if (l.media_type == kLayerMessages) {
      auto m = ParseMessagesJson(*t);
      if (!m.ok()) return fail(m.status().message());
      e.messages = std::move(*m);
    } else if (l.media_type == kLayerLicense) {
      e.license += (e.license.empty() ? "" : "\n\n") + *t;
    }
  }
  return e;
}

Result<ModelEntry> ModelStore::Find(std::string_view raw) const {
  auto name = ParseModelName(raw);
  if (!name.ok()) return name.status();
  auto path = ManifestPath(*name);
  if (!path.ok()) return ModelNotFound(raw);
  return LoadEntry(*name, *path);
}

std::vector<ModelEntry> ModelStore::List() const {
  std::vector<ModelEntry> out;
  std::error_code ec;
  const fs::path base = root_ + "/manifests";
  if (!fs::is_directory(base, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(base, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it.depth() != 3 || !it->is_regular_file(ec)) continue;
    fs::path rel = fs::relative(it->path(), base, ec);
    std::vector<std::string> parts;
    for (const auto& p : rel) parts.push_back(p.string());
    if (parts.size() != 4 || parts[3].rfind(".tmp-", 0) == 0) continue;
    auto name = ParseModelName(parts[0] + "/" + parts[1] + "/" + parts[2] + ":" + parts[3]);
    if (!name.ok()) {
      spdlog::warn("skipping manifest {}: {}", it->path().string(), name.status().message());
      continue;
    }
    auto entry = LoadEntry(*name, it->path().string());
    if (!entry.ok()) {
      spdlog::warn("{}", entry.status().message());
      continue;
    }
    out.push_back(std::move(*entry));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Status ModelStore::WriteManifest(const ModelName& name, const std::string& bytes) {
  return WriteFileAtomic(root_ + "/manifests/" + name.ManifestRelPath(), bytes);
}

Result<ModelEntry> ModelStore::Create(std::string_view raw_name, const Modelfile& mf, const std::string& base_dir,
                                      const ModelCatalog& models, const CreateProgress& progress) {
  RESIDENT_RETURN_IF_ERROR(CheckWritable());
  auto name = ParseModelName(raw_name);
  if (!name.ok()) return name.status();
  RESIDENT_RETURN_IF_ERROR(CheckModelfileLimits(mf));
  auto say = [&](CreateEvent ev) {
    if (progress) progress(ev);
  };
  std::lock_guard lock(mu_);
  // Shared with other creates, never with a prune: from the first blob to the manifest.
  auto store_lock = StoreLock::Acquire(root_, StoreLock::Mode::kShared);
  if (!store_lock.ok()) return store_lock.status();

  // Where the weights come from: a file, or an existing model. An absolute path is a file; a
  // relative one is a file only in base_dir (a Modelfile's folder) and only when it exists there,
  // as Ollama's CLI resolves FROM; anything else is a model name, never a file in this
  // process's working folder.
  std::string weights_path;
  ModelEntry inherited;
  fs::path from(mf.from);
  std::error_code ec;
  bool is_file = from.is_absolute();
  if (!is_file && !base_dir.empty() && fs::exists(fs::path(base_dir) / from, ec)) {
    from = fs::path(base_dir) / from;
    is_file = true;
  }
  if (is_file) {
    RESIDENT_RETURN_IF_ERROR(CheckModelFile(from.string(), "FROM " + mf.from));
    weights_path = fs::canonical(from, ec).string();
  } else if (!ParseModelName(mf.from).ok()) {
    return Status::NotFound("FROM " + mf.from + ": no such file" +
                           (base_dir.empty() ? " (a path must be absolute)" : " in " + base_dir));
  } else {
    auto base = models.Find(mf.from);
    if (!base.ok()) {
      if (base.status().code() == StatusCode::kNotFound && mf.from.ends_with(".gguf")) {
        return Status::NotFound("FROM " + mf.from + ": no such file or model");
      }
      return base.status();
    }
    inherited = std::move(*base);
    weights_path = inherited.path;
    say({"using existing model " + inherited.name});
  }

  auto info = ReadGgufInfo(weights_path);
  if (!info.ok()) {
    return Status::InvalidArgument("cannot create \"" + name->Display() + "\": " + info.status().message());
  }
  // Values llama.cpp would abort on or compute NaN from: refused now rather than at every load.
  if (Status st = CheckGgufHyperparameters(*info); !st.ok()) {
    const std::string source = is_file ? mf.from : "model \"" + inherited.name + "\"";
    return Status::InvalidArgument("cannot create \"" + name->Display() + "\": " + source +
                                   " cannot be loaded: " + st.message());
  }

  // The weights blob: a file already named by its digest (another store's blob) is trusted by
  // name; anything else is hashed.
  std::string weights_digest;
  uint64_t weights_size = fs::file_size(weights_path, ec);
  std::string fname = fs::path(weights_path).filename().string();
  bool named_by_digest = fname.size() == 71 && fname.rfind("sha256-", 0) == 0 && IsSha256Hex(fname.substr(7));
  if (named_by_digest && blobs_.Has(fname)) {
    weights_digest = "sha256:" + fname.substr(7);
    say({"using existing layer " + weights_digest, weights_digest});
  } else {
    say({"importing " + weights_path});
    auto imported = blobs_.ImportFile(weights_path, [&](ImportPass pass, uint64_t done, uint64_t total) {
      say({pass == ImportPass::kCopying ? "copying model" : "hashing model", "", total, done});
      return true;
    });
    if (!imported.ok()) return imported.status();
    weights_digest = imported->digest;
    weights_size = imported->size;
    say({std::string("model placed in the store (") + ImportHowName(imported->how) + ")", weights_digest});
  }

  // Modelfile values override the inherited ones.
  std::string template_text = mf.has_template ? mf.template_text : inherited.template_text;
  std::string system = mf.has_system ? mf.system : inherited.system;
  // Inherited parameters come from another store's params layer: checked like a Modelfile's.
  std::vector<std::pair<std::string, std::string>> parameters;
  for (const auto& [k, v] : inherited.parameters) {
    if (!FindOption(Lower(k))) {
      spdlog::warn("model \"{}\": parameter {} is not an option resident knows; \"{}\" does not inherit it",
                   inherited.name, k, name->Display());
      continue;
    }
    if (Status st = ValidateParameter(k, v); !st.ok()) {
      return Status::InvalidArgument("cannot create \"" + name->Display() + "\": the params layer of model \"" +
                                     inherited.name + "\" is malformed: " + st.message());
    }
    parameters.emplace_back(Lower(k), v);
  }
  if (!mf.parameters.empty()) {
    std::set<std::string> given;
    for (const auto& p : mf.parameters) given.insert(p.first);
    std::erase_if(parameters, [&](const auto& p) { return given.count(p.first) > 0; });
    parameters.insert(parameters.end(), mf.parameters.begin(), mf.parameters.end());
  }
  auto messages = mf.messages.empty() ? inherited.messages : mf.messages;
  std::vector<std::string> licenses = mf.licenses;
  if (licenses.empty() && !inherited.license.empty()) licenses.push_back(inherited.license);

  Manifest m;
  m.layers.push_back({std::string(kLayerModel), weights_digest, weights_size});
  // Every layer is one that LoadEntry reads back: a text too large for it is refused here,
  // before anything is written, never found after the manifest names it.
  auto add_text = [&](std::string_view media_type, const std::string& bytes) -> Status {
    if (bytes.size() > kMaxTextLayerBytes) {
      return Status::InvalidArgument("cannot create \"" + name->Display() + "\": its " + std::string(media_type) +
                                     " layer would be " + std::to_string(bytes.size()) +
                                     " bytes, more than a model may carry (" + std::to_string(kMaxTextLayerBytes) +
                                     " bytes)");
    }
    auto d = blobs_.Put(bytes);
    if (!d.ok()) return d.status();
    m.layers.push_back({std::string(media_type), *d, bytes.size()});
    return Status::Ok();
  };
  if (!template_text.empty()) RESIDENT_RETURN_IF_ERROR(add_text(kLayerTemplate, template_text));
  if (!system.empty()) RESIDENT_RETURN_IF_ERROR(add_text(kLayerSystem, system));
  if (!parameters.empty()) RESIDENT_RETURN_IF_ERROR(add_text(kLayerParams, ParamsJson(parameters)));
  if (!messages.empty()) RESIDENT_RETURN_IF_ERROR(add_text(kLayerMessages, MessagesJson(messages)));
  for (const std::string& l : licenses) RESIDENT_RETURN_IF_ERROR(add_text(kLayerLicense, l));

  ModelConfig cfg;
  cfg.model_family = info->architecture;
  if (!info->architecture.empty()) cfg.model_families = {info->architecture};
  cfg.model_type = info->n_params ? FormatCount(info->n_params) : "";
  cfg.file_type = info->file_type_name == "unknown" ? "" : info->file_type_name;
  std::vector<std::string> diff_ids;
  for (const Layer& l : m.layers) diff_ids.push_back(l.digest);
  std::string config_bytes = SerializeConfig(cfg, diff_ids);
  auto config_digest = blobs_.Put(config_bytes);
  if (!config_digest.ok()) return config_digest.status();
  m.config = {std::string(kConfigMediaType), *config_digest, config_bytes.size()};

  const std::string manifest = SerializeManifest(m);
  if (manifest.size() > kMaxManifestBytes) {
    return Status::InvalidArgument("cannot create \"" + name->Display() + "\": its manifest would be " +
                                   std::to_string(manifest.size()) + " bytes (at most " +
                                   std::to_string(kMaxManifestBytes) + ")");
  }
  // The model this replaces, if any, so that a manifest that does not read back is undone.
  say({"writing manifest"});
  return CommitManifest(*name, manifest, "create");
}

Result<ModelEntry> ModelStore::CommitManifest(const ModelName& name, const std::string& bytes, const std::string& verb) {
  std::optional<std::string> previous;
  if (auto old_path = ManifestPath(name); old_path.ok()) {
    if (auto old = ReadSmallFile(*old_path, kMaxManifestBytes); old.ok()) previous = std::move(*old);
  }
  RESIDENT_RETURN_IF_ERROR(WriteManifest(name, bytes));
  auto path = ManifestPath(name);
  if (!path.ok()) return path.status();
  auto entry = LoadEntry(name, *path);
  if (!entry.ok()) {
    // Never "failed" with the model left behind: the store is as it was before.
    std::error_code ec;
    Status undo = previous ? WriteManifest(name, *previous) : Status::Ok();
    if (!previous) fs::remove(*path, ec);
    if (!undo.ok() || ec) spdlog::error("{} \"{}\": cannot undo its manifest {}", verb, name.Display(), *path);
    return Status::Internal("cannot " + verb + " \"" + name.Display() + "\": " + entry.status().message());
  }
  return entry;
}

Result<std::string> ModelStore::ManifestBytes(std::string_view raw) const {
  auto name = ParseModelName(raw);
  if (!name.ok()) return name.status();
  auto path = ManifestPath(*name);
  if (!path.ok()) return ModelNotFound(raw);
  auto entry = LoadEntry(*name, *path);  // never hand out a broken model
  if (!entry.ok()) return entry.status();
  return ReadSmallFile(*path, kMaxManifestBytes);
}

Result<ModelEntry> ModelStore::Install(std::string_view raw, const std::string& manifest_bytes) {
  RESIDENT_RETURN_IF_ERROR(CheckWritable());
  auto name = ParseModelName(raw);
  if (!name.ok()) return name.status();
  auto manifest = ParseManifest(manifest_bytes);
  if (!manifest.ok()) return manifest.status();
  std::lock_guard lock(mu_);
  auto store_lock = StoreLock::Acquire(root_, StoreLock::Mode::kShared);
  if (!store_lock.ok()) return store_lock.status();
  std::vector<const Layer*> layers{&manifest->config};
  for (const Layer& l : manifest->layers) layers.push_back(&l);
  std::error_code ec;
  for (const Layer* l : layers) {  // every blob there before anything moves
    auto partial = blobs_.PartialPath(l->digest);
    if (!partial.ok()) return Status::InvalidArgument("corrupt manifest: bad digest " + l->digest);
    if (!blobs_.Has(l->digest) && !fs::exists(*partial, ec)) {
      return Status::NotFound("blob " + l->digest + " is neither in the store nor downloaded");
    }
  }
  for (const Layer* l : layers) {
    auto partial = blobs_.PartialPath(l->digest);
    auto path = blobs_.PathFor(l->digest);
    if (blobs_.Has(l->digest)) {
      fs::remove(*partial, ec);  // a download another pull finished first
      continue;
    }
    fs::rename(*partial, *path, ec);
    if (ec) return Status::Internal("cannot place blob " + l->digest + ": " + ec.message());
  }
  // The renames are on disk before the manifest that names their blobs.
  if (int dir = ::open(blobs_.dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return CommitManifest(*name, manifest_bytes, "install");
}

Status ModelStore::Copy(std::string_view from, std::string_view to) {
  RESIDENT_RETURN_IF_ERROR(CheckWritable());
  auto src = ParseModelName(from);
  if (!src.ok()) return src.status();
  auto dst = ParseModelName(to);
  if (!dst.ok()) return dst.status();
  std::lock_guard lock(mu_);
  auto store_lock = StoreLock::Acquire(root_, StoreLock::Mode::kShared);
  if (!store_lock.ok()) return store_lock.status();
  auto path = ManifestPath(*src);
  if (!path.ok()) return ModelNotFound(from);
  auto entry = LoadEntry(*src, *path);  // refuse to copy a broken model
  if (!entry.ok()) return entry.status();
  auto bytes = ReadSmallFile(*path, kMaxManifestBytes);
  if (!bytes.ok()) return bytes.status();
  return WriteManifest(*dst, *bytes);
}

Result<std::vector<std::string>> ModelStore::Delete(std::string_view raw) {
  RESIDENT_RETURN_IF_ERROR(CheckWritable());
  auto name = ParseModelName(raw);
  if (!name.ok()) return name.status();
  const Status not_found = Status::NotFound("model '" + std::string(raw) + "' not found");
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) return not_found;
  std::lock_guard lock(mu_);
  auto store_lock = StoreLock::Acquire(root_, StoreLock::Mode::kExclusive);
  if (!store_lock.ok()) return store_lock.status();
  auto path = ManifestPath(*name);
  if (!path.ok()) return not_found;
  fs::remove(*path, ec);
  if (ec) return Status::Internal("cannot remove " + *path + ": " + ec.message());
  // Remove the now-empty folders up to manifests/.
  const fs::path stop = fs::path(root_) / "manifests";
  for (fs::path dir = fs::path(*path).parent_path(); dir != stop && dir.string().size() > stop.string().size();
       dir = dir.parent_path()) {
    if (!fs::is_empty(dir, ec) || !fs::remove(dir, ec)) break;
  }
  return PruneLocked();
}

Result<std::vector<std::string>> ModelStore::Prune() {
  RESIDENT_RETURN_IF_ERROR(CheckWritable());
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) return std::vector<std::string>{};
  std::lock_guard lock(mu_);
  auto store_lock = StoreLock::Acquire(root_, StoreLock::Mode::kExclusive);
  if (!store_lock.ok()) return store_lock.status();
  return PruneLocked();
}

Result<std::vector<std::string>> ModelStore::PruneLocked() {
  std::set<std::string> referenced;
  std::error_code ec;
  const fs::path base = root_ + "/manifests";
  if (fs::is_directory(base, ec)) {
    for (auto it = fs::recursive_directory_iterator(base, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (!it->is_regular_file(ec) || it->path().filename().string().rfind(".tmp-", 0) == 0) continue;
      auto bytes = ReadSmallFile(it->path().string(), kMaxManifestBytes);
      auto m = bytes.ok() ? ParseManifest(*bytes) : Result<Manifest>(bytes.status());
      if (!m.ok()) {
        spdlog::warn("not pruning blobs: cannot read manifest {}: {}", it->path().string(), m.status().message());
        return std::vector<std::string>{};
      }
      referenced.insert(m->config.digest);
      for (const Layer& l : m->layers) referenced.insert(l.digest);
    }
    if (ec) return Status::Internal("cannot list " + base.string() + ": " + ec.message());
  }
  std::vector<std::string> removed;
  const auto day_ago = fs::file_time_type::clock::now() - std::chrono::hours(24);
  for (const auto& e : fs::directory_iterator(blobs_.dir(), ec)) {
    std::string f = e.path().filename().string();
    std::error_code fec;
    if (f.rfind(".tmp-", 0) == 0) {
      if (e.last_write_time(fec) < day_ago) fs::remove(e.path(), fec);
      continue;
    }
    // A pull's download left behind (abandoned, or its model pulled another way): kept a week for
    // a pull to resume, then removed.
    if (f.size() == 71 + 8 && f.rfind("sha256-", 0) == 0 && f.ends_with("-partial")) {
      if (e.last_write_time(fec) < fs::file_time_type::clock::now() - std::chrono::hours(24 * 7)) {
        fs::remove(e.path(), fec);
      }
      continue;
    }
    if (f.size() != 71 || f.rfind("sha256-", 0) != 0 || !IsSha256Hex(f.substr(7))) continue;
    if (referenced.count("sha256:" + f.substr(7))) continue;
    if (fs::remove(e.path(), fec)) removed.push_back(e.path().string());
  }
  return removed;
}

std::string StoreRootFromEnv(const std::string& home) {
  const char* v = std::getenv("RESIDENT_MODELS");
  if (v && *v) return v;
  return home + "/.resident/models";
}

}  // namespace resident::store
