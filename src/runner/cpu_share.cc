#include "runner/cpu_share.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

namespace resident::runner {

static_assert(std::atomic<int32_t>::is_always_lock_free, "the table is shared between processes");

void CpuShare::Map(int fd) {
  void* p = ::mmap(nullptr, sizeof(Table), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return;
  fd_ = fd;
  table_ = static_cast<Table*>(p);
}

CpuShare& CpuShare::ForServer() {
  static CpuShare* share = [] {
    auto* s = new CpuShare();  // lives as long as the process: runners hold the page too
    int fd = ::memfd_create("resident-cpu-share", MFD_CLOEXEC);
    if (fd >= 0 && ::ftruncate(fd, sizeof(Table)) == 0) s->Map(fd);  // a fresh memfd reads as zeros
    else if (fd >= 0) ::close(fd);
    return s;
  }();
  return *share;
}

CpuShare& CpuShare::ForRunner(int fd) {
  static CpuShare* share = [fd] {
    auto* s = new CpuShare();
    if (fd >= 0) s->Map(fd);
    if (s->table_ != nullptr) {
      const int32_t self = static_cast<int32_t>(::getpid());
      for (int i = 0; i < kRows; ++i) {
        int32_t expected = 0;
        if (s->table_->owner[i].compare_exchange_strong(expected, self)) {
          s->row_ = i;
          break;
        }
      }
    }
    return s;
  }();
  return *share;
}

void CpuShare::SetBusy(bool busy) {
  if (row_ >= 0) table_->busy[row_].store(busy ? 1 : 0, std::memory_order_relaxed);
}

int CpuShare::BusyCount() const {
  if (table_ == nullptr || row_ < 0) return 1;
  return std::max(1, BusyRunners());
}

int CpuShare::BusyRunners() const {
  if (table_ == nullptr) return 0;
  int n = 0;
  for (int i = 0; i < kRows; ++i) {
    if (table_->owner[i].load(std::memory_order_relaxed) != 0 && table_->busy[i].load(std::memory_order_relaxed) != 0) ++n;
  }
  return n;
}

void CpuShare::Forget(pid_t pid) {
  if (table_ == nullptr || pid <= 0) return;
  for (int i = 0; i < kRows; ++i) {
    if (table_->owner[i].load() == static_cast<int32_t>(pid)) {
      table_->busy[i].store(0);
      table_->owner[i].store(0);
    }
  }
}

int CpuShare::ThreadsFor(int cores, int busy_runners) {
  return std::max(1, cores / std::max(1, busy_runners));
}

}  // namespace resident::runner
