// Ollama's queue on the real server: with the model busy, exactly max_queue requests wait and
// every other one is answered 503 with Ollama's busy message (clients match it to retry), never
// reset, whether the scheduler's queue or the HTTP layer's connection limit is what is full.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kBusy = "server busy, please try again.  maximum pending requests exceeded";

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::remove(dir_ + "/tiny.gguf");  // from an earlier --gtest_repeat round
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }

  // Takes the model's one slot and keeps it: a streamed generation whose client reads its first
  // line, then nothing, through a tiny receive buffer, so the server's writes block and the
  // generation waits for them (the idle timeout is long) until the connection is closed.
  int HoldTheModel(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string body = json{{"model", "tiny"},
                            {"prompt", "alpha"},
                            {"options", {{"num_predict", 100000}, {"temperature", 0}}}}
                           .dump();
    std::string request = RawPost("/api/generate", body);
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    std::string got;
    char buf[512];
    while (got.find("\"response\"") == std::string::npos) {  // the first line: it generates
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
    return fd;
  }

  // `clients` streamed requests at once, each on its own connection.
  struct Wave {
    std::vector<RawReply> replies;
    std::vector<std::thread> threads;
    std::atomic<int> busy{0};  // answered 503 so far
    void Start(int port, int clients) {
      replies.resize(static_cast<size_t>(clients));
      std::string request = RawPost("/api/generate", R"({"model":"tiny","prompt":"hi","options":{"num_predict":3}})");
      for (int i = 0; i < clients; ++i) {
        threads.emplace_back([this, port, request, i] {
          replies[static_cast<size_t>(i)] = RawRequest(port, request);
          if (replies[static_cast<size_t>(i)].status == 503) ++busy;
        });
      }
    }
    void Join() {
      for (auto& t : threads) t.join();
    }
  };

  // Waits until `busy` clients were refused and (queued >= 0) `queued` requests wait in the
  // scheduler, as /metrics says; or, so that a failure ends, until five minutes pass.
  static void WaitFor(int port, const Wave& wave, int busy, int queued) {
    const auto give_up = Clock::now() + std::chrono::minutes(5);
    double waiting = -1;
    while (Clock::now() < give_up) {
      if (queued >= 0) waiting = MetricSample(Get(port, "/metrics").body, "resident_queued_requests");
      if (wave.busy.load() >= busy && waiting >= queued) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(wave.busy.load(), busy) << "waiting in the scheduler: " << waiting;
    if (queued >= 0) {
      EXPECT_EQ(waiting, queued);
    }
  }

  // Every client got a whole stream or Ollama's 503; none was reset.
  static void ExpectServedOrBusy(const Wave& wave, int served, int busy) {
    int got_served = 0, got_busy = 0;
    for (size_t i = 0; i < wave.replies.size(); ++i) {
      const RawReply& r = wave.replies[i];
      SCOPED_TRACE("client " + std::to_string(i) + ": HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300));
      EXPECT_FALSE(r.reset);
      if (r.status == 503) {
        ++got_busy;
        EXPECT_EQ(r.json(), json({{"error", kBusy}})) << r.body;
      } else {
        EXPECT_EQ(r.status, 200) << r.body;
        json last = json::parse(r.body.substr(r.body.rfind('\n', r.body.size() - 2) + 1), nullptr, false);
        EXPECT_TRUE(last.value("done", false)) << r.body;
        ++got_served;
      }
    }
    EXPECT_EQ(got_served, served);
    EXPECT_EQ(got_busy, busy);
  }

  std::string dir_;
};

TEST_F(QueueTest, WithTheModelBusyExactlyMaxQueueRequestsWaitAndTheRestGetOllamasBusyAnswer) {
  // More waiting requests than the 128 connections the HTTP layer once took: the connection limit
  // follows the queue (150 + 3 x 1 + 64), so the queue is what fills.
  ServerProcess server(dir_, {{"RESIDENT_MAX_QUEUE", "150"}, {"RESIDENT_IDLE_TIMEOUT", "10m"}});
  int holder = HoldTheModel(server.port());
  Wave wave;
  wave.Start(server.port(), 200);
  WaitFor(server.port(), wave, 50, 150);
  ::close(holder);  // the slot comes free: the 150 are served in turn
  wave.Join();
  ExpectServedOrBusy(wave, 150, 50);
  EXPECT_TRUE(server.alive());
}

TEST_F(QueueTest, ConnectionsBeyondWhatTheServerHoldsGetTheSameBusyAnswerNeverAReset) {
  // 4 connections served (the holder and 3 requests waiting in the scheduler) + 4 waiting for a
  // worker; the 53 others are refused by the HTTP layer as they arrive. (Nothing else may
  // connect meanwhile: it would take a place. So /metrics is not asked.)
  ServerProcess server(dir_, {{"RESIDENT_MAX_CONNECTIONS", "4"}, {"RESIDENT_IDLE_TIMEOUT", "10m"}});
  int holder = HoldTheModel(server.port());
  Wave wave;
  wave.Start(server.port(), 60);
  WaitFor(server.port(), wave, 53, /*queued=*/-1);
  ::close(holder);
  wave.Join();
  ExpectServedOrBusy(wave, 7, 53);
  EXPECT_TRUE(server.alive());
}

}  // namespace
}  // namespace resident::testing
