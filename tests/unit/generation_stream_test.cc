#include "api/generation_stream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

namespace resident::api {
namespace {

using runner::DoneEvent;
using runner::TokenEvent;
using OnPiece = std::function<bool(const TokenEvent&)>;

// A generation's callback handed text alone, as most tests need.
struct OnText {
  const OnPiece& on_piece;
  bool operator()(const char* text) const { return on_piece(TokenEvent{0, text}); }
};

TEST(GenerationStream, AFailureBeforeAnyTextIsReturnedByWaitForFirst) {
  GenerationStream s([](const OnPiece&) -> Result<DoneEvent> {
    return Status::InvalidArgument("the prompt is 600 tokens, more than the context of 256 tokens can hold");
  });
  Status first = s.WaitForFirst();
  EXPECT_EQ(first.code(), StatusCode::kInvalidArgument);
  TokenEvent piece;
  EXPECT_FALSE(s.Next(&piece));
}

TEST(GenerationStream, HandsOverEveryPieceInOrderThenTheEnd) {
  GenerationStream s([](const OnPiece& on_piece) -> Result<DoneEvent> {
    OnText on_text{on_piece};
    for (const char* p : {"a", "b", "c"}) {
      if (!on_text(p)) return Status::Cancelled("request cancelled");
    }
    DoneEvent d;
    d.done_reason = "stop";
    return d;
  });
  ASSERT_TRUE(s.WaitForFirst().ok());
  TokenEvent piece;
  std::string all;
  int n = 0;
  while (s.Next(&piece)) {
    all += piece.text;
    ++n;
  }
  EXPECT_EQ(all, "abc");
  EXPECT_EQ(n, 3);
  ASSERT_TRUE(s.result().ok());
  EXPECT_EQ(s.result()->done_reason, "stop");
}

TEST(GenerationStream, AFailureAfterTextIsTheResultNotTheStatus) {
  GenerationStream s([](const OnPiece& on_piece) -> Result<DoneEvent> {
    OnText on_text{on_piece};
    on_text("x");
    return Status::Unavailable("the runner died");
  });
  EXPECT_TRUE(s.WaitForFirst().ok());
  TokenEvent piece;
  EXPECT_TRUE(s.Next(&piece));
  EXPECT_FALSE(s.Next(&piece));
  EXPECT_EQ(s.result().status().code(), StatusCode::kUnavailable);
}

TEST(GenerationStream, CancelStopsAGenerationThatRunsAheadOfAWriterThatIsGone) {
  std::atomic<int> produced{0};
  std::promise<void> ended;
  {
    GenerationStream s([&](const OnPiece& on_piece) -> Result<DoneEvent> {
      OnText on_text{on_piece};
      // Endless: only a cancel stops it. Beyond kMaxAhead unread pieces, on_text waits.
      while (on_text("t")) ++produced;
      ended.set_value();
      return Status::Cancelled("request cancelled");
    });
    ASSERT_TRUE(s.WaitForFirst().ok());
    TokenEvent piece;
    ASSERT_TRUE(s.Next(&piece));
    s.Cancel();
    EXPECT_EQ(ended.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
    while (s.Next(&piece)) {
    }
    EXPECT_EQ(s.result().status().code(), StatusCode::kCancelled);
  }
  EXPECT_LE(produced.load(), static_cast<int>(GenerationStream::kMaxAhead) + 1);
}

TEST(GenerationStream, DestroyingItUnblocksAndJoinsTheGeneration) {
  std::atomic<bool> returned{false};
  {
    GenerationStream s([&](const OnPiece& on_piece) -> Result<DoneEvent> {
      OnText on_text{on_piece};
      while (on_text("t")) {
      }
      returned = true;
      return Status::Cancelled("request cancelled");
    });
    ASSERT_TRUE(s.WaitForFirst().ok());
  }  // nobody read: the destructor cancels and waits
  EXPECT_TRUE(returned.load());
}

}  // namespace
}  // namespace resident::api
