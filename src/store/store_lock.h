// StoreLock: the lock that keeps two processes writing one store (a server and
// `resident create --local`) from racing a prune against a create. It is flock(2) on
// <root>/.lock: creates and copies hold it shared (they may run side by side: each writes its
// blobs, then its manifest), prunes and deletes hold it exclusive, so a prune never sees a blob
// whose manifest is still being written. Dropping the StoreLock (move-only) releases it; so does
// the process ending, however it ends.
//
// flock conflicts between open file descriptions, so two StoreLocks in one process exclude each
// other as two processes would (ModelStore's own mutex orders its threads first).
#pragma once

#include <string>

#include "core/status.h"

namespace resident::store {

class StoreLock {
 public:
  enum class Mode { kShared, kExclusive };

  // Creates <root> and <root>/.lock when missing, then waits for the lock. Errors: kInternal
  // when the file cannot be created or locked.
  static Result<StoreLock> Acquire(const std::string& root, Mode mode);

  StoreLock(StoreLock&& other) noexcept;
  StoreLock& operator=(StoreLock&& other) noexcept;
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  ~StoreLock();

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace resident::store
