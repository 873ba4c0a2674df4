// The residency event log: bounded, sequence numbers, readers that wait; and the log lines.
#include "sched/event_log.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace resident::sched {
namespace {

using namespace std::chrono_literals;

ResidencyEvent Named(const std::string& model) {
  ResidencyEvent e;
  e.model = model;
  return e;
}

std::vector<uint64_t> Seqs(const std::vector<ResidencyEvent>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e.seq);
  return out;
}

TEST(EventLogTest, NumbersEventsAndKeepsOnlyTheNewest) {
  EventLog log(3);
  EXPECT_EQ(log.last_seq(), 0u);
  EXPECT_TRUE(log.Since(0).empty());
  for (int i = 1; i <= 5; ++i) {
    std::string name = "m";
    name += std::to_string(i);
    EXPECT_EQ(log.Append(Named(name)), static_cast<uint64_t>(i));
  }
  EXPECT_EQ(log.last_seq(), 5u);
  auto all = log.Since(0);
  EXPECT_EQ(Seqs(all), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(all.front().model, "m3");
  EXPECT_EQ(Seqs(log.Since(1)), (std::vector<uint64_t>{3, 4, 5}));  // older ones are gone
  EXPECT_EQ(Seqs(log.Since(3)), (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(Seqs(log.Since(4)), (std::vector<uint64_t>{5}));
  EXPECT_TRUE(log.Since(5).empty());
  EXPECT_TRUE(log.Since(99).empty());
}

TEST(EventLogTest, AWaitingReaderWakesOnAnAppendOrAClose) {
  EventLog log;
  log.Append(Named("a"));
  EXPECT_EQ(Seqs(log.WaitSince(0, 1h)), (std::vector<uint64_t>{1}));  // already there: no wait
  auto waiter = std::async(std::launch::async, [&] { return log.WaitSince(1, 1h); });
  EXPECT_EQ(waiter.wait_for(0s), std::future_status::timeout);
  log.Append(Named("b"));
  EXPECT_EQ(Seqs(waiter.get()), (std::vector<uint64_t>{2}));

  auto closed = std::async(std::launch::async, [&] { return log.WaitSince(2, 1h); });
  log.Close();
  EXPECT_TRUE(closed.get().empty());
  EXPECT_TRUE(log.closed());
  EXPECT_TRUE(log.WaitSince(2, 1h).empty());  // closed: returns at once
  EXPECT_TRUE(log.WaitSince(5, 0ms).empty());
}

TEST(EventLogTest, EveryKindOfEventReadsAsOneLogLine) {
  ResidencyEvent load = Named("a:latest");
  load.type = ResidencyEvent::Type::kLoad;
  load.duration = 2310ms;
  load.bytes = 1'600'000'000;
  load.predicted_bytes = 1'500'000'000;
  load.pid = 42;
  EXPECT_EQ(Describe(load), "loaded a:latest in 2.31 s (1.6 GB measured, predicted 1.5 GB, pid 42)");
  load.bytes = 0;
  EXPECT_EQ(Describe(load), "loaded a:latest in 2.31 s (predicted 1.5 GB, not measured, pid 42)");

  ResidencyEvent evict = Named("b:latest");
  evict.type = ResidencyEvent::Type::kEvict;
  evict.reason = UnloadReason::kMemory;
  evict.bytes = 1'600'000'000;
  evict.idle = 4min;
  evict.for_model = "a:latest";
  EXPECT_EQ(Describe(evict), "unloaded b:latest (1.6 GB, idle 4m0s) to make room for a:latest");

  ResidencyEvent unload = Named("a:latest");
  unload.type = ResidencyEvent::Type::kUnload;
  unload.bytes = 1'600'000'000;
  unload.idle = 3s;
  unload.reason = UnloadReason::kExpired;
  unload.keep_alive = KeepAlive::Of(5min);
  EXPECT_EQ(Describe(unload), "unloaded a:latest (1.6 GB, expired after keep_alive 5m0s)");
  unload.reason = UnloadReason::kManual;
  EXPECT_EQ(Describe(unload), "unloaded a:latest (1.6 GB, idle 3s): stopped (keep_alive 0)");
  unload.reason = UnloadReason::kReload;
  EXPECT_EQ(Describe(unload), "unloaded a:latest (1.6 GB, idle 3s) to load it again with new load options");
  unload.reason = UnloadReason::kExited;
  EXPECT_EQ(Describe(unload), "unloaded a:latest (1.6 GB, idle 3s): its runner process was gone");
  // The runner's own account when it has one: a health-check kill says so, and why.
  unload.explanation = "the runner for a:latest (pid 12) stopped answering (no health answer in 4 s) and was killed";
  EXPECT_EQ(Describe(unload),
            "unloaded a:latest (1.6 GB, idle 3s): the runner for a:latest (pid 12) stopped answering (no health "
            "answer in 4 s) and was killed");

  ResidencyEvent failed = Named("c:latest");
  failed.type = ResidencyEvent::Type::kLoadFailed;
  failed.duration = 500ms;
  failed.error = "not a GGUF file";
  EXPECT_EQ(Describe(failed), "loading c:latest failed after 0.50 s: not a GGUF file");
  EXPECT_STREQ(TypeName(ResidencyEvent::Type::kLoadFailed), "load_failed");
}

}  // namespace
}  // namespace resident::sched
