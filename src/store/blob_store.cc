#include "store/blob_store.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

namespace resident::store {
namespace fs = std::filesystem;

namespace {

std::string Errno() { return std::strerror(errno); }

Status WriteAll(int fd, const char* data, size_t n, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::Internal("cannot write " + what + ": " + Errno());
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

}  // namespace

const char* ImportHowName(ImportedBlob::How how) {
  switch (how) {
    case ImportedBlob::How::kExisting: return "already in the store";
    case ImportedBlob::How::kHardLink: return "hard link";
    case ImportedBlob::How::kReflink: return "reflink";
    case ImportedBlob::How::kCopy: return "copy";
  }
  return "";
}

Result<std::string> CanonicalDigest(std::string_view digest) {
  std::string d(digest);
  if (d.size() == 71 && (d.compare(0, 7, "sha256:") == 0 || d.compare(0, 7, "sha256-") == 0)) {
    std::string hex = d.substr(7);
    for (char& c : hex) {
      if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    }
    if (IsSha256Hex(hex)) return "sha256:" + hex;
  }
  std::string shown = d.substr(0, 80);
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return Status::InvalidArgument("invalid digest \"" + shown + "\": expected sha256:<64 hex digits>");
}

BlobStore::BlobStore(std::string root) : dir_(std::move(root) + "/blobs") {}

Result<std::string> BlobStore::PathFor(std::string_view digest) const {
  auto d = CanonicalDigest(digest);
  if (!d.ok()) return d.status();
  return dir_ + "/sha256-" + d->substr(7);
}

Result<std::string> BlobStore::PartialPath(std::string_view digest) const {
  auto p = PathFor(digest);
  if (!p.ok()) return p.status();
  return *p + "-partial";
}

bool BlobStore::Has(std::string_view digest) const {
  auto p = PathFor(digest);
  std::error_code ec;
  return p.ok() && fs::is_regular_file(*p, ec);
}

Status BlobStore::EnsureDir() const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Status::Internal("cannot create " + dir_ + ": " + ec.message());
  return Status::Ok();
}

std::string BlobStore::TempPath() const {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  return dir_ + "/.tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
         std::to_string(rd());
}

Result<std::string> BlobStore::Put(std::string_view bytes) {
  std::string digest = "sha256:" + Sha256Hex(bytes);
  if (Has(digest)) return digest;
  RESIDENT_RETURN_IF_ERROR(EnsureDir());
  std::string tmp = TempPath();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal("cannot create " + tmp + ": " + Errno());
  Status st = WriteAll(fd, bytes.data(), bytes.size(), tmp);
  if (st.ok() && ::fsync(fd) != 0) st = Status::Internal("cannot sync " + tmp + ": " + Errno());
  ::close(fd);
  if (st.ok() && ::rename(tmp.c_str(), PathFor(digest)->c_str()) != 0) {
    st = Status::Internal("cannot rename " + tmp + ": " + Errno());
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return digest;
}

Result<std::string> BlobStore::ReadVerified(std::string_view digest, uint64_t max_bytes) const {
  auto path = PathFor(digest);
  if (!path.ok()) return path.status();
  std::error_code ec;
  auto size = fs::file_size(*path, ec);
  if (ec) return Status::NotFound("blob " + std::string(digest) + " is missing");
  if (size > max_bytes) return Status::Internal("blob " + std::string(digest) + " is too large to read");
  std::ifstream in(*path, std::ios::binary);
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    return Status::Internal("cannot read blob " + std::string(digest));
  }
  if ("sha256:" + Sha256Hex(bytes) != *CanonicalDigest(digest)) {
    return Status::Internal("digest mismatch in blob " + std::string(digest) + " (the file is corrupt)");
  }
  return bytes;
}

Result<ImportedBlob> BlobStore::ImportFile(const std::string& path, const ImportProgress& progress) {
  struct stat before {};
  if (::stat(path.c_str(), &before) != 0) return Status::NotFound("cannot open " + path + ": " + Errno());
  if (!S_ISREG(before.st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  HashProgress hashing;
  if (progress) hashing = [&](uint64_t done, uint64_t total) { return progress(ImportPass::kHashing, done, total); };
  auto hex = Sha256File(path, hashing);
  if (!hex.ok()) return hex.status();
  ImportedBlob out;
  out.digest = "sha256:" + *hex;
  out.size = static_cast<uint64_t>(before.st_size);
  if (Has(out.digest)) {
    out.how = ImportedBlob::How::kExisting;
    return out;
  }
  RESIDENT_RETURN_IF_ERROR(EnsureDir());
  std::string dest = *PathFor(out.digest);
  std::string tmp = TempPath();

  // 1. Hard link: same inode, no bytes written. The file must not change afterwards (it is
  //    documented: importing shares the file with the store).
  if (::link(path.c_str(), tmp.c_str()) == 0) {
    struct stat after {};
    if (::stat(tmp.c_str(), &after) != 0 || after.st_size != before.st_size || after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
        after.st_mtim.tv_nsec != before.st_mtim.tv_nsec) {
      ::unlink(tmp.c_str());
      return Status::Internal(path + " changed while it was being imported");
    }
    if (::rename(tmp.c_str(), dest.c_str()) != 0) {
      ::unlink(tmp.c_str());
      return Status::Internal("cannot rename into " + dest + ": " + Errno());
    }
    out.how = ImportedBlob::How::kHardLink;
    return out;
  }

  // 2. Reflink, else 3. a copy; both hashed again from the written file's source bytes.
  int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Status::NotFound("cannot open " + path + ": " + Errno());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    ::close(in);
    return Status::Internal("cannot create " + tmp + ": " + Errno());
  }
  Status st;
  if (::ioctl(fd, FICLONE, in) == 0) {
    out.how = ImportedBlob::How::kReflink;
    ::close(in);
    ::close(fd);
    auto again = Sha256File(tmp);
    if (!again.ok()) st = again.status();
    else if (*again != *hex) st = Status::Internal(path + " changed while it was being imported");
  } else {
    out.how = ImportedBlob::How::kCopy;
    Sha256 h;
    std::vector<char> buf(4 << 20);
    uint64_t done = 0;
    for (;;) {
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        st = Status::Internal("cannot read " + path + ": " + Errno());
        break;
      }
      if (n == 0) break;
      h.Update(buf.data(), static_cast<size_t>(n));
      st = WriteAll(fd, buf.data(), static_cast<size_t>(n), tmp);
      if (!st.ok()) break;
      done += static_cast<uint64_t>(n);
      if (progress && !progress(ImportPass::kCopying, done, out.size)) {
        st = Status::Cancelled("import of " + path + " was cancelled");
        break;
      }
    }
    if (st.ok() && h.FinishHex() != *hex) st = Status::Internal(path + " changed while it was being imported");
    if (st.ok() && ::fsync(fd) != 0) st = Status::Internal("cannot sync " + tmp + ": " + Errno());
    ::close(in);
    ::close(fd);
  }
  if (st.ok() && ::rename(tmp.c_str(), dest.c_str()) != 0) st = Status::Internal("cannot rename into " + dest + ": " + Errno());
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return out;
}

Status BlobStore::Remove(std::string_view digest) {
  auto p = PathFor(digest);
  if (!p.ok()) return p.status();
  ::unlink(p->c_str());
  return Status::Ok();
}

}  // namespace resident::store
