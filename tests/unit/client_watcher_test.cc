// ClientWatcher: a stop is requested when the peer of a watched socket closes or resets it, not
// when it sends data, and never after Unwatch.
#include "api/client_watcher.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "api/bounded_http_server.h"

namespace resident::api {
namespace {

bool WaitForStop(const std::stop_source& s) {
  for (int i = 0; i < 30000 && !s.stop_requested(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return s.stop_requested();
}

TEST(ClientWatcher, APeerThatClosesStopsTheRequestDataDoesNot) {
  ClientWatcher w;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::stop_source gone;
  std::atomic<int> woken{0};
  std::stop_callback cb(gone.get_token(), [&] { ++woken; });
  uint64_t id = w.Watch(sv[0], gone);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(w.watched(), 1u);
  ASSERT_EQ(::send(sv[1], "GET / HTTP/1.1\r\n", 16, 0), 16);  // a pipelined request: not a hang-up
  // A second watch on another socket whose peer closes: its stop comes, so the watcher has
  // looked at the first socket's data by then too.
  int sv2[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
  std::stop_source other;
  uint64_t id2 = w.Watch(sv2[0], other);
  ::close(sv2[1]);
  ASSERT_TRUE(WaitForStop(other));
  EXPECT_FALSE(gone.stop_requested());
  ::close(sv[1]);
  ASSERT_TRUE(WaitForStop(gone));
  EXPECT_EQ(woken.load(), 1);
  w.Unwatch(id, sv[0]);
  w.Unwatch(id2, sv2[0]);
  EXPECT_EQ(w.watched(), 0u);
  ::close(sv[0]);
  ::close(sv2[0]);
}

TEST(ClientWatcher, AfterUnwatchNoStopComes) {
  ClientWatcher w;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  std::stop_source gone;
  w.Unwatch(w.Watch(sv[0], gone), sv[0]);
  ::close(sv[1]);
  // A later watch whose peer closes proves the watcher ran past the first socket's hang-up.
  int sv2[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
  std::stop_source other;
  uint64_t id2 = w.Watch(sv2[0], other);
  ::close(sv2[1]);
  ASSERT_TRUE(WaitForStop(other));
  EXPECT_FALSE(gone.stop_requested());
  w.Unwatch(id2, sv2[0]);
  ::close(sv[0]);
  ::close(sv2[0]);
}

TEST(ClientWatcher, OutsideARequestTheTokenNeverStops) {
  EXPECT_FALSE(BoundedHttpServer::ClientGone().stop_possible());
}

}  // namespace
}  // namespace resident::api
