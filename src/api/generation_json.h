// The JSON of what a generation adds to text: tool calls (Ollama's and OpenAI's shapes) and
// token log-probabilities (Ollama's shape, which its OpenAI layer also uses).
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "runner/protocol.h"

namespace resident::api {

// Ollama's message.tool_calls: [{"id","function":{"index","name","arguments":{...}}}], the
// arguments an object. `first_index`: the index of the first of these calls in the answer.
nlohmann::json OllamaToolCalls(const std::vector<runner::ToolCall>& calls, size_t first_index);

// OpenAI's tool_calls: [{"id","index","type":"function","function":{"name","arguments":"{...}"}}],
// the arguments a JSON string (compact, keys sorted, as Ollama writes them).
nlohmann::json OpenAiToolCalls(const std::vector<runner::ToolCall>& calls, size_t first_index);

// [{"token","logprob","bytes":[...],"top_logprobs":[{"token","logprob","bytes"}]}], Ollama's
// shape (`bytes` and `top_logprobs` left out when empty).
nlohmann::json LogprobsJson(const std::vector<runner::TokenLogprob>& logprobs);

// OpenAI's legacy /v1/completions shape, which its clients read there:
// {"tokens":[...],"token_logprobs":[...],"top_logprobs":[{"<token>":logprob,...}]} (top_logprobs
// null when the tokens carry no alternatives).
nlohmann::json CompletionLogprobsJson(const std::vector<runner::TokenLogprob>& logprobs);

}  // namespace resident::api
