#include "store/model_transfer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/bytes.h"
#include "store/sha256.h"

namespace resident::store {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr auto kProgressEvery = std::chrono::milliseconds(100);
constexpr int kMaxFailuresInARow = 3;
constexpr uint64_t kSyncEvery = 64u << 20;  // bytes written before their writeback is started

// The config first, then the layers, each digest once.
std::vector<Layer> Blobs(const Manifest& m) {
  std::vector<Layer> out;
  std::set<std::string> seen;
  if (seen.insert(m.config.digest).second) out.push_back(m.config);
  for (const Layer& l : m.layers) {
    if (seen.insert(l.digest).second) out.push_back(l);
  }
  return out;
}

std::string Short(const std::string& digest) { return digest.substr(7, 12); }

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Calls `say` with byte progress at most every kProgressEvery, and always for the last byte.
class Throttle {
 public:
  bool Due(uint64_t completed, uint64_t total) {
    auto now = Clock::now();
    if (completed < total && now - last_ < kProgressEvery) return false;
    last_ = now;
    return true;
  }

 private:
  Clock::time_point last_ = Clock::now() - std::chrono::seconds(1);
};

}  // namespace

Status ModelTransfers::Fetch(RegistryClient& client, const Layer& layer, Download& shared,
                             const std::function<void()>& tick) {
  const std::string& digest = layer.digest;
  auto partial = store_.blobs().PartialPath(digest);
  if (!partial.ok()) return partial.status();
  const std::string path = *partial;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal("cannot create " + path + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  auto discard = [&] {
    std::error_code ec;
    fs::remove(path, ec);
  };

  // What an earlier pull left is hashed first, then the download goes on from its end.
  auto hash = std::make_unique<Sha256>();
  uint64_t pos = FileSize(path);
  if (pos > layer.size) {
    if (::ftruncate(fd, 0) != 0) return Status::Internal("cannot truncate " + path + ": " + std::strerror(errno));
    pos = 0;
  }
  if (pos > 0) {
    std::vector<char> buf(4u << 20);
    for (uint64_t off = 0; off < pos;) {
      ssize_t got = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), pos - off), static_cast<off_t>(off));
      if (got <= 0) {
        pos = off;  // keep what could be read
        break;
      }
      hash->Update(buf.data(), static_cast<size_t>(got));
      off += static_cast<uint64_t>(got);
    }
    spdlog::info("pull: resuming blob {} at {} of {}", digest, FormatBytes(pos), FormatBytes(layer.size));
  }
  {
    std::lock_guard lock(shared.mu);
    shared.completed = pos;
  }

  int failures = 0;
  uint64_t synced = pos;
  while (pos < layer.size) {
    int write_errno = 0;
    bool too_many = false, stopped = false, bad_range = false;
    const uint64_t attempt_start = pos;
    Status st = client.GetBlob(digest, pos, [&](uint64_t at, const char* data, size_t n) {
      if (at != pos) {
        if (at != 0) {  // a range nobody asked for
          bad_range = true;
          return false;
        }
        // The registry sends the whole blob again: start over.
        if (::ftruncate(fd, 0) != 0) {
          write_errno = errno;
          return false;
        }
        hash = std::make_unique<Sha256>();
        pos = synced = 0;
      }
      if (pos + n > layer.size) {
        too_many = true;
        return false;
      }
      for (size_t done = 0; done < n;) {
        ssize_t w = ::pwrite(fd, data + done, n - done, static_cast<off_t>(pos + done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          write_errno = errno;
          return false;
        }
        done += static_cast<size_t>(w);
      }
      hash->Update(data, n);
      pos += n;
      // Written back as it goes, so that the final sync is short.
      if (pos - synced >= kSyncEvery) {
        ::sync_file_range(fd, static_cast<off_t>(synced), static_cast<off_t>(pos - synced), SYNC_FILE_RANGE_WRITE);
        synced = pos;
      }
      bool unwatched;
      {
        std::lock_guard lock(shared.mu);
        shared.completed = pos;
        unwatched = shared.watchers == 0;
      }
      if (unwatched && StopUnwatched(digest, shared)) {
        stopped = true;
        return false;
      }
      shared.cv.notify_all();
      tick();
      return true;
    });
    if (write_errno != 0) {
      discard();
      if (write_errno == ENOSPC || write_errno == EDQUOT) {
        return Status::Internal("no space left on the disk of " + store_.root() + " for blob " + digest + " (" +
                                FormatBytes(layer.size) + ")");
      }
      return Status::Internal("cannot write " + path + ": " + std::strerror(write_errno));
    }
    if (too_many) {
      discard();
      return Status::Internal("blob " + digest + ": the registry sent more than the " + std::to_string(layer.size) +
                              " bytes the manifest names");
    }
    if (stopped) return Status::Cancelled("pull cancelled: its clients went away (pulling again resumes the download)");
    if (bad_range) return Status::Internal("blob " + digest + ": the registry answered a range request with another range");
    if (st.ok() && pos == layer.size) break;
    if (!st.ok() && st.code() != StatusCode::kUnavailable) return st;
    // The connection broke (or ended short): again from where it stopped, unless it keeps failing.
    failures = pos > attempt_start ? 1 : failures + 1;
    const std::string why = st.ok() ? "the connection ended after " + FormatBytes(pos) : st.message();
    if (failures >= kMaxFailuresInARow) {
      return Status::Unavailable("blob " + digest + ": " + why + " (" + FormatBytes(pos) + " of " +
                                 FormatBytes(layer.size) + " kept: pulling again resumes)");
    }
    spdlog::warn("pull: blob {}: {}; resuming at {}", digest, why, FormatBytes(pos));
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * failures));
  }
  const std::string got = "sha256:" + hash->FinishHex();
  if (got != digest) {
    discard();
    return Status::Internal("digest mismatch, file must be downloaded again: want " + digest + ", got " + got);
  }
  // On disk before the manifest that names it is written (ModelStore::Install).
  if (::fdatasync(fd) != 0) return Status::Internal("cannot sync " + path + ": " + std::strerror(errno));
  return Status::Ok();
}

bool ModelTransfers::StopUnwatched(const std::string& digest, Download& shared) {
  // Decided under the map's lock: a pull that comes now either joins before (and the download goes
  // on) or finds no download and starts its own (resuming the partial file).
  std::lock_guard lock(mu_);
  std::lock_guard dl(shared.mu);
  if (shared.watchers > 0) return false;
  auto it = downloads_.find(digest);
  if (it != downloads_.end() && it->second.get() == &shared) downloads_.erase(it);
  return true;
}

Status ModelTransfers::Obtain(RegistryClient& client, const Layer& l,
                              const std::function<void(const CreateEvent&)>& say, const bool& client_gone) {
  const std::string status = "pulling " + Short(l.digest);
  std::shared_ptr<Download> d;
  bool owner = false;
  {
    std::lock_guard lock(mu_);
    auto it = downloads_.find(l.digest);
    if (it != downloads_.end()) {
      d = it->second;
      std::lock_guard dl(d->mu);
      ++d->watchers;
    } else {
      d = std::make_shared<Download>();
      downloads_[l.digest] = d;
      owner = true;
    }
  }
  Throttle throttle;
  bool left = false;  // this pull's client went away and it stopped watching
  auto report = [&] {
    uint64_t completed;
    {
      std::lock_guard dl(d->mu);
      completed = d->completed;
    }
    if (throttle.Due(completed, l.size)) say({status, l.digest, l.size, completed});
    if (client_gone && !left) {
      left = true;
      std::lock_guard dl(d->mu);
      --d->watchers;
    }
  };
  if (!owner) {
    std::unique_lock dl(d->mu);
    while (!d->done) {
      d->cv.wait_for(dl, kProgressEvery);
      dl.unlock();
      report();
      dl.lock();
      if (left) return Status::Cancelled("pull cancelled: its client went away");
    }
    return d->result;
  }
  // Whatever happens (an exception included), the download ends for its watchers too.
  Status st = Status::Internal("the download of " + l.digest + " stopped unexpectedly");
  struct Ending {
    ModelTransfers* self;
    const std::string& digest;
    const std::shared_ptr<Download>& d;
    const Status& st;
    ~Ending() {
      {
        std::lock_guard lock(self->mu_);
        auto it = self->downloads_.find(digest);
        if (it != self->downloads_.end() && it->second == d) self->downloads_.erase(it);
      }
      {
        std::lock_guard dl(d->mu);
        d->done = true;
        d->result = st;
      }
      d->cv.notify_all();
    }
  } ending{this, l.digest, d, st};
  say({status, l.digest, l.size, 0});
  st = Fetch(client, l, *d, report);
  return st;
}

Result<ModelEntry> ModelTransfers::Pull(std::string_view raw, const RegistryOptions& options,
                                        const TransferProgress& progress) {
  if (store_.read_only()) return Status::InvalidArgument("this server has no writable model store");
  auto name = ParseModelName(raw);
  if (!name.ok()) return name.status();
  bool client_gone = false;
  auto say = [&](const CreateEvent& ev) {
    if (!client_gone && progress && !progress(ev)) client_gone = true;
  };
  say({"pulling manifest"});
  RegistryClient client(*name, options);
  auto bytes = client.GetManifest();
  if (!bytes.ok()) return Status(bytes.status().code(), "pull model manifest: " + bytes.status().message());
  auto manifest = ParseManifest(*bytes);
  if (!manifest.ok()) {
    return Status::Internal("pull model manifest: " + name->host + " answered something that is not a model manifest (" +
                            manifest.status().message() + ")");
  }
  if (manifest->Find(kLayerModel) == nullptr) {
    return Status::Internal("pull model manifest: the manifest of " + name->Display() + " names no model weights");
  }
  const std::vector<Layer> blobs = Blobs(*manifest);

  // Room for what is missing, before a byte is written.
  RESIDENT_RETURN_IF_ERROR(store_.blobs().Prepare());
  uint64_t need = 0;
  for (const Layer& l : blobs) {
    if (store_.blobs().Has(l.digest)) continue;
    uint64_t have = FileSize(*store_.blobs().PartialPath(l.digest));
    need += l.size > have ? l.size - have : 0;
  }
  struct statvfs vfs {};
  if (::statvfs(store_.blobs().dir().c_str(), &vfs) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (need > free_bytes) {
      return Status::Internal("not enough disk space to pull " + name->Display() + ": it needs " + FormatBytes(need) +
                              " more, and " + store_.blobs().dir() + " has " + FormatBytes(free_bytes) + " free");
    }
  }

  // Every blob the store lacks, downloaded and checked (or watched while another pull does it).
  auto fetch_missing = [&]() -> Status {
    for (const Layer& l : blobs) {
      if (!store_.blobs().Has(l.digest)) RESIDENT_RETURN_IF_ERROR(Obtain(client, l, say, client_gone));
      say({"pulling " + Short(l.digest), l.digest, l.size, l.size});
    }
    return Status::Ok();
  };
  RESIDENT_RETURN_IF_ERROR(fetch_missing());
  say({"verifying sha256 digest"});
  say({"writing manifest"});
  auto entry = store_.Install(name->Display(), *bytes);
  if (entry.status().code() == StatusCode::kNotFound) {
    // A blob the store had when this pull began was pruned since (another pull replaced the model
    // that used it): fetched now, once.
    RESIDENT_RETURN_IF_ERROR(fetch_missing());
    entry = store_.Install(name->Display(), *bytes);
  }
  if (!entry.ok()) return entry.status();
  // The blobs of the tag's previous version, unless another model names them.
  if (auto pruned = store_.Prune(); pruned.ok() && !pruned->empty()) {
    spdlog::info("pull {}: removed {} blobs no model uses any more", name->Display(), pruned->size());
  }
  say({"success"});
  return entry;
}

Status ModelTransfers::Push(std::string_view raw, const RegistryOptions& options, const TransferProgress& progress) {
  auto name = ParseModelName(raw);
  if (!name.ok()) return name.status();
  bool client_gone = false;
  auto say = [&](const CreateEvent& ev) {
    if (!client_gone && progress && !progress(ev)) client_gone = true;
  };
  say({"retrieving manifest"});
  auto bytes = store_.ManifestBytes(raw);
  if (!bytes.ok()) {
    if (bytes.status().code() == StatusCode::kNotFound) {
      return Status::NotFound("model \"" + name->Display() + "\" not found in resident's store");
    }
    return bytes.status();
  }
  auto manifest = ParseManifest(*bytes);
  if (!manifest.ok()) return manifest.status();
  RegistryClient client(*name, options);
  for (const Layer& l : Blobs(*manifest)) {
    const std::string status = "pushing " + Short(l.digest);
    auto has = client.HasBlob(l.digest);
    if (!has.ok()) return Status(has.status().code(), "push " + name->Display() + ": " + has.status().message());
    if (!*has) {
      auto path = store_.blobs().PathFor(l.digest);
      if (!path.ok()) return path.status();
      say({status, l.digest, l.size, 0});
      Throttle throttle;
      Status st = client.PutBlob(l.digest, *path, l.size, [&](uint64_t sent) {
        if (throttle.Due(sent, l.size)) say({status, l.digest, l.size, std::min(sent, l.size)});
        return !client_gone;
      });
      if (st.code() == StatusCode::kCancelled) return Status::Cancelled("push cancelled: its client went away");
      if (!st.ok()) return Status(st.code(), "push " + name->Display() + ": " + st.message());
    }
    say({status, l.digest, l.size, l.size});
  }
  say({"pushing manifest"});
  if (Status st = client.PutManifest(*bytes); !st.ok()) {
    return Status(st.code(), "push " + name->Display() + ": " + st.message());
  }
  say({"success"});
  return Status::Ok();
}

}  // namespace resident::store
