#include "runner/prompt_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <utility>

#include "core/checksum.h"

namespace resident::runner {
namespace {

constexpr char kMagic[8] = {'R', 'E', 'S', 'P', 'C', 'K', 'V', '\0'};
// No header is larger: 16 M tokens and a key of a few hundred bytes fit.
constexpr uint64_t kMaxHeaderBytes = 64ull << 20;
// Files are read through a buffer of this size.
constexpr size_t kReadChunk = 1u << 20;
// A temporary file this old is what a runner killed while saving left behind.
constexpr auto kStaleTemporary = std::chrono::hours(1);

std::string Errno() { return std::strerror(errno); }

void Put32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
void Put64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }

// Reads little-endian values from a header, failing past its end.
class HeaderReader {
 public:
  explicit HeaderReader(std::string_view bytes) : bytes_(bytes) {}
  bool Read(void* out, size_t n) {
    if (bytes_.size() - pos_ < n) return false;
    std::memcpy(out, bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }
  size_t left() const { return bytes_.size() - pos_; }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

std::string TokensHash(const std::vector<int32_t>& tokens) {
  return Hex64(Checksum64(tokens.data(), tokens.size() * sizeof(int32_t)));
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Reads n bytes at offset (fewer only at the end of the file).
Result<std::string> ReadAt(int fd, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Internal("cannot read: " + Errno());
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// The checksum of a file's first `bytes` bytes, read through a small buffer. Errors: kInternal on
// a read error, kInvalidArgument when the file is shorter.
Result<uint64_t> ChecksumOfFile(int fd, uint64_t bytes, const std::function<void()>& progress) {
  std::vector<char> buffer(kReadChunk);
  Checksum64Stream sum;
  uint64_t done = 0, since_progress = 0;
  while (done < bytes) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), bytes - done));
    ssize_t r = ::pread(fd, buffer.data(), want, static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Internal("cannot read: " + Errno());
    if (r == 0) return Status::InvalidArgument("it is cut short");
    sum.Update(buffer.data(), static_cast<size_t>(r));
    done += static_cast<uint64_t>(r);
    since_progress += static_cast<uint64_t>(r);
    if (progress && since_progress >= (8u << 20)) {
      progress();
      since_progress = 0;
    }
  }
  return sum.Digest();
}

// An open file, closed on destruction unless released.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// Reads and checks the header of an open entry file of `size` bytes.
Result<PromptCacheEntry> ReadEntryHeader(int fd, uint64_t size, std::string_view key) {
  const std::string not_entry = "it does not end with the footer of a prompt cache entry (cut short, or not an entry)";
  if (size < kPromptCacheFooterBytes) return Status::InvalidArgument(not_entry);
  auto footer = ReadAt(fd, size - kPromptCacheFooterBytes, kPromptCacheFooterBytes);
  if (!footer.ok()) return footer.status();
  const uint64_t header_bytes = PromptCacheHeaderBytes(*footer);
  if (header_bytes == 0) return Status::InvalidArgument(not_entry);
  if (header_bytes + kPromptCacheFooterBytes > size) return Status::InvalidArgument("it is cut short (its header is not whole)");
  auto header = ReadAt(fd, size - kPromptCacheFooterBytes - header_bytes, static_cast<size_t>(header_bytes));
  if (!header.ok()) return header.status();
  auto entry = DecodePromptCacheHeader(*header, key);
  if (!entry.ok()) return entry.status();
  const uint64_t want = entry->payload_bytes + header_bytes + kPromptCacheFooterBytes;
  if (size != want) {
    return Status::InvalidArgument("it is cut short or overlong (" + std::to_string(size) + " bytes, its header says " +
                                   std::to_string(want) + ")");
  }
  entry->file_bytes = size;
  return entry;
}

}  // namespace

Result<std::string> ModelFileIdentity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::NotFound("cannot read " + path + ": " + Errno());
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec);
  if (ec) abs = path;
  const std::string name = abs.filename().string();
  std::string id;
  // A store's blob: sha256-<64 hex digits>. Its digest says what it is wherever the store lies.
  if (name.size() == 71 && name.starts_with("sha256-") &&
      std::all_of(name.begin() + 7, name.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
    id = "sha256:" + name.substr(7);
  } else {
    id = abs.string();
  }
  return id + ";size=" + std::to_string(st.st_size) + ";mtime=" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

Status CreatePromptCacheDir(const std::string& dir) {
  std::error_code ec;
  const std::filesystem::path path(dir);
  if (std::filesystem::is_directory(path, ec)) return Status::Ok();
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::Internal("cannot create " + dir + ": " + Errno());
  return Status::Ok();
}

VerifiedPromptEntry::VerifiedPromptEntry(VerifiedPromptEntry&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), entry_(std::move(other.entry_)) {}

VerifiedPromptEntry& VerifiedPromptEntry::operator=(VerifiedPromptEntry&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

VerifiedPromptEntry::~VerifiedPromptEntry() {
  if (fd_ >= 0) ::close(fd_);
}

std::string EncodePromptCacheTrailer(std::string_view key, const std::vector<int32_t>& tokens, size_t canonical,
                                     uint64_t payload_bytes, uint64_t payload_checksum) {
  std::string h;
  h.append(kMagic, sizeof kMagic);
  Put32(h, kPromptCacheVersion);
  Put64(h, payload_bytes);
  Put64(h, payload_checksum);
  Put32(h, static_cast<uint32_t>(key.size()));
  h.append(key);
  Put32(h, static_cast<uint32_t>(canonical));
  Put32(h, static_cast<uint32_t>(tokens.size()));
  h.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int32_t));
  Put64(h, Checksum64(h.data(), h.size()));
  const uint64_t header_bytes = h.size();
  Put64(h, header_bytes);
  h.append(kMagic, sizeof kMagic);
  return h;
}

uint64_t PromptCacheHeaderBytes(std::string_view footer) {
  if (footer.size() != kPromptCacheFooterBytes || std::memcmp(footer.data() + 8, kMagic, sizeof kMagic) != 0) return 0;
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, footer.data(), 8);
  return header_bytes > 0 && header_bytes <= kMaxHeaderBytes ? header_bytes : 0;
}

Result<PromptCacheEntry> DecodePromptCacheHeader(std::string_view header, std::string_view key) {
  HeaderReader r(header);
  char magic[8] = {};
  uint32_t version = 0;
  if (!r.Read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) return Status::InvalidArgument("its header is not an entry's");
  if (!r.Read(&version, 4) || version != kPromptCacheVersion) {
    return Status::InvalidArgument("it is of format version " + std::to_string(version) + ", not " +
                                   std::to_string(kPromptCacheVersion));
  }
  PromptCacheEntry e;
  uint32_t key_len = 0, canonical = 0, n_tokens = 0;
  std::string saved_key;
  bool ok = r.Read(&e.payload_bytes, 8) && r.Read(&e.payload_checksum, 8) && r.Read(&key_len, 4) && key_len <= r.left();
  if (ok) {
    saved_key.resize(key_len);
    ok = r.Read(saved_key.data(), key_len) && r.Read(&canonical, 4) && r.Read(&n_tokens, 4) &&
         static_cast<uint64_t>(n_tokens) * 4 <= r.left();
  }
  if (ok) {
    e.tokens.resize(n_tokens);
    ok = r.Read(e.tokens.data(), static_cast<size_t>(n_tokens) * 4);
  }
  const size_t checked = r.pos();
  uint64_t checksum = 0;
  if (!ok || !r.Read(&checksum, 8) || r.left() != 0) return Status::InvalidArgument("its header is malformed");
  if (checksum != Checksum64(header.data(), checked)) return Status::InvalidArgument("its header fails its checksum (corrupt)");
  if (saved_key != key) {
    return Status::InvalidArgument("it was made for another model file or other context settings (" + saved_key + ")");
  }
  if (e.tokens.empty() || canonical > n_tokens || e.payload_bytes == 0) {
    return Status::InvalidArgument("its header holds impossible counts");
  }
  e.canonical = canonical;
  return e;
}

PromptCacheFolder::PromptCacheFolder(std::string dir, uint64_t max_bytes, std::string key)
    : dir_(std::move(dir)), max_bytes_(max_bytes), key_(std::move(key)), key_hash_(Hex64(Checksum64(key_))) {}

std::string PromptCacheFolder::PathFor(const std::vector<int32_t>& tokens) const {
  return dir_ + "/" + key_hash_ + "-" + TokensHash(tokens) + ".kv";
}

std::vector<PromptCacheEntry> PromptCacheFolder::Scan(std::vector<std::string>* dropped) const {
  std::vector<std::pair<int64_t, PromptCacheEntry>> found;  // (mtime ns, entry)
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return {};
  const std::string prefix = key_hash_ + "-";
  while (dirent* de = ::readdir(d)) {
    std::string_view name = de->d_name;
    if (!name.starts_with(prefix) || !EndsWith(name, ".kv")) continue;
    const std::string path = dir_ + "/" + std::string(name);
    Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (f.fd < 0 || ::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) continue;  // gone meanwhile
    auto entry = ReadEntryHeader(f.fd, static_cast<uint64_t>(st.st_size), key_);
    if (!entry.ok()) {
      if (entry.status().code() == StatusCode::kInvalidArgument) {
        ::unlink(path.c_str());
        if (dropped != nullptr) dropped->push_back(path + ": " + entry.status().message() + "; removed");
      }
      continue;
    }
    entry->path = path;
    found.emplace_back(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, std::move(entry).value());
  }
  ::closedir(d);
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<PromptCacheEntry> out;
  out.reserve(found.size());
  for (auto& [mtime, e] : found) out.push_back(std::move(e));
  return out;
}

Result<VerifiedPromptEntry> PromptCacheFolder::Verify(const PromptCacheEntry& entry,
                                                      const std::function<void()>& progress) const {
  Fd f(::open(entry.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) {
    if (errno == ENOENT) return Status::NotFound(entry.path + " is gone");
    return Status::Internal("cannot open " + entry.path + ": " + Errno());
  }
  auto corrupt = [&](const std::string& why) -> Status {
    ::unlink(entry.path.c_str());
    return Status::InvalidArgument(why);
  };
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return Status::Internal("cannot stat " + entry.path + ": " + Errno());
  // The file may have been replaced since it was scanned: its own header must say the same.
  auto header = ReadEntryHeader(f.fd, static_cast<uint64_t>(st.st_size), key_);
  if (!header.ok()) {
    return header.status().code() == StatusCode::kInvalidArgument ? corrupt(header.status().message()) : header.status();
  }
  if (header->tokens != entry.tokens) return Status::NotFound(entry.path + " was replaced by another entry");
  auto sum = ChecksumOfFile(f.fd, header->payload_bytes, progress);
  if (!sum.ok()) return sum.status().code() == StatusCode::kInvalidArgument ? corrupt(sum.status().message()) : sum.status();
  if (*sum != header->payload_checksum) return corrupt("its state fails its checksum (corrupt)");
  header->path = entry.path;
  return VerifiedPromptEntry(f.release(), std::move(header).value());
}

Result<PromptCacheSaveResult> PromptCacheFolder::Save(const std::vector<int32_t>& tokens, size_t canonical,
                                                      const PayloadWriter& write_payload,
                                                      const std::function<void()>& progress) const {
  PromptCacheSaveResult result;
  result.path = PathFor(tokens);
  RESIDENT_RETURN_IF_ERROR(CreatePromptCacheDir(dir_));
  Fd lock(::open((dir_ + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (lock.fd < 0) return Status::Internal("cannot open " + dir_ + "/.lock: " + Errno());
  while (::flock(lock.fd, LOCK_EX) != 0 && errno == EINTR) {
  }

  // As WriteFileAtomically (core/atomic_file.h), with the payload written by llama.cpp.
  const std::string tmp = result.path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
  struct Unlink {
    const std::string& path;
    bool armed = true;
    ~Unlink() {
      if (armed) ::unlink(path.c_str());
    }
  } cleanup{tmp};
  RESIDENT_RETURN_IF_ERROR(write_payload(tmp));
  Fd f(::open(tmp.c_str(), O_RDWR | O_CLOEXEC));
  struct stat st {};
  if (f.fd < 0 || ::fstat(f.fd, &st) != 0) return Status::Internal("cannot open " + tmp + ": " + Errno());
  (void)::fchmod(f.fd, 0600);  // the prompt's tokens are in it
  const uint64_t payload_bytes = static_cast<uint64_t>(st.st_size);
  if (payload_bytes == 0) return Status::Internal("the state written to " + tmp + " is empty");
  auto sum = ChecksumOfFile(f.fd, payload_bytes, progress);
  if (!sum.ok()) return sum.status();
  const std::string trailer = EncodePromptCacheTrailer(key_, tokens, canonical, payload_bytes, *sum);
  result.bytes = payload_bytes + trailer.size();
  result.payload_bytes = payload_bytes;
  result.payload_checksum = *sum;
  if (result.bytes > max_bytes_) {
    return Status::ResourceExhausted("an entry of " + std::to_string(result.bytes) + " bytes is larger than the cache's " +
                                     std::to_string(max_bytes_));
  }
  for (size_t done = 0; done < trailer.size();) {
    ssize_t w = ::pwrite(f.fd, trailer.data() + done, trailer.size() - done, static_cast<off_t>(payload_bytes + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::Internal("cannot write " + tmp + ": " + Errno());
    done += static_cast<size_t>(w);
  }
  if (::fsync(f.fd) != 0) return Status::Internal("cannot sync " + tmp + ": " + Errno());
  if (::close(f.release()) != 0) return Status::Internal("cannot close " + tmp + ": " + Errno());
  if (::rename(tmp.c_str(), result.path.c_str()) != 0) return Status::Internal("cannot rename " + tmp + ": " + Errno());
  cleanup.armed = false;
  if (Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dir.fd >= 0) ::fsync(dir.fd);  // the rename survives a crash
  if (progress) progress();

  // Eviction: every entry of the folder (every model's), least recently used first.
  struct Item {
    std::string path;
    uint64_t bytes;
    int64_t mtime_ns;
  };
  std::vector<Item> items;
  uint64_t total = 0;
  const int64_t now_s = static_cast<int64_t>(::time(nullptr));
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (dirent* de = ::readdir(d)) {
      std::string_view name = de->d_name;
      const bool entry = EndsWith(name, ".kv");
      const bool temporary = name.find(".kv.tmp-") != std::string_view::npos;
      if (!entry && !temporary) continue;
      const std::string path = dir_ + "/" + std::string(name);
      struct stat es {};
      if (::stat(path.c_str(), &es) != 0 || !S_ISREG(es.st_mode)) continue;
      if (temporary) {
        if (now_s - es.st_mtim.tv_sec > std::chrono::duration_cast<std::chrono::seconds>(kStaleTemporary).count()) {
          ::unlink(path.c_str());
        }
        continue;
      }
      items.push_back({path, static_cast<uint64_t>(es.st_size),
                       static_cast<int64_t>(es.st_mtim.tv_sec) * 1000000000 + es.st_mtim.tv_nsec});
      total += static_cast<uint64_t>(es.st_size);
    }
    ::closedir(d);
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.mtime_ns < b.mtime_ns; });
  for (const Item& item : items) {
    if (total <= max_bytes_) break;
    if (item.path == result.path) continue;
    if (::unlink(item.path.c_str()) == 0) {
      ++result.evicted;
      result.evicted_bytes += item.bytes;
    }
    total -= item.bytes;
  }
  return result;
}

void PromptCacheFolder::Remove(const PromptCacheEntry& entry) const { ::unlink(entry.path.c_str()); }

void PromptCacheFolder::Touch(const PromptCacheEntry& entry) const { ::utimensat(AT_FDCWD, entry.path.c_str(), nullptr, 0); }

}  // namespace resident::runner
