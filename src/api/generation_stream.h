// GenerationStream: a generation run on a thread of its own so that the HTTP answer can wait
// for its first piece of text before choosing a status. A failure before any text (a prompt
// longer than the context, a runner that died while loading the prompt) is then answered as an
// HTTP error with its status (400, 500, ...) instead of "200 OK" and an error line, as Ollama
// answers it; once text flows, the answer is a stream.
//
// The generation may run up to kMaxAhead pieces ahead of the writer, so that a writer thread that
// is scheduled late never holds the runner back (its events would pile up and a cancel would
// wait for them); beyond that a client that stops reading stops the generation until the write
// times out and cancels it, as when the writer generated the text itself.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/status.h"
#include "runner/protocol.h"

namespace resident::api {

class GenerationStream {
 public:
  // Runs the generation: hands each piece (text, a chat's thinking and tool calls, the tokens'
  // log-probabilities) to on_piece (which returns false to cancel) and returns the end. Called
  // once, on the stream's thread.
  using Run = std::function<Result<runner::DoneEvent>(const std::function<bool(const runner::TokenEvent&)>& on_piece)>;

  static constexpr size_t kMaxAhead = 256;

  explicit GenerationStream(Run run);
  // Cancels the generation if it still runs and waits for its thread (within one token).
  ~GenerationStream();
  GenerationStream(const GenerationStream&) = delete;
  GenerationStream& operator=(const GenerationStream&) = delete;

  // Blocks until the first piece or the end. Returns the generation's error when it failed
  // before any piece; Ok otherwise (a piece is waiting, or it ended well without any).
  Status WaitForFirst();
  // Blocks for the next piece: true with *piece set, or false when the generation has ended and
  // every piece was taken (then result()).
  bool Next(runner::TokenEvent* piece);
  // The end of the generation. Only after Next() returned false.
  const Result<runner::DoneEvent>& result() const { return result_; }
  // The client went away: the generation stops before its next token.
  void Cancel();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<runner::TokenEvent> pieces_;  // guarded by mu_
  bool ended_ = false;              // guarded by mu_
  bool cancelled_ = false;          // guarded by mu_
  Result<runner::DoneEvent> result_{Status::Internal("generation not finished")};  // written before ended_
  std::thread thread_;
};

}  // namespace resident::api
