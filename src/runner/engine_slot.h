// Engine::Slot: one request in one sequence of the engine's context. Internal to the engine's
// files (engine.cc, engine_prompt_cache.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "llama.h"
#include "runner/engine.h"

namespace resident::runner {

// One request in one sequence of the context.
struct Engine::Slot {
  explicit Slot(int32_t seq_id) : seq(seq_id) {}
  const int32_t seq;
  std::vector<int32_t> cached;  // tokens whose KV entries are in the context for `seq`
  size_t canonical = 0;         // the first `canonical` of them were decoded as a fresh context would (ReusablePrefix)
  bool busy = false;
  bool reproducible = false;    // the request has a seed: its prompt is decoded in canonical chunks

  // The request being served (when busy).
  int32_t num_predict = -1;
  std::vector<std::string> stop;
  bool return_context = false;
  std::shared_ptr<const std::atomic<bool>> cancel;
  TextSink on_text;
  DoneSink on_done;
  std::unique_ptr<llama_sampler, void (*)(llama_sampler*)> sampler{nullptr, llama_sampler_free};
  std::vector<int32_t> prompt;
  size_t prompt_done = 0;        // prompt tokens in `cached` (decoded or reused)
  bool generating = false;       // the prompt is decoded; `next` is the token to decode
  int32_t next = LLAMA_TOKEN_NULL;
  std::string held;              // generated text not yet emitted (a partial character or a possible stop)
  std::vector<int32_t> generated;
  DoneEvent done;
  std::chrono::steady_clock::time_point started, generating_since;
  bool logprobs = false;         // the request wants each token's log-probability
  int32_t top_logprobs = 0;
  std::vector<TokenLogprob> pending_logprobs;  // of the tokens in `held`
  std::vector<int32_t> preserved;              // special tokens emitted as text (sorted)

  // In the batch being decoded.
  int32_t n_in_batch = 0;
  int32_t logits_at = -1;        // batch index of this slot's output, -1 if none
};

}  // namespace resident::runner
