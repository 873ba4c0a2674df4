#include "api/generation_json.h"

namespace resident::api {
namespace {

using nlohmann::json;

// The arguments the runner checked to be a JSON object; an empty object should they not parse.
json Arguments(const std::string& text) {
  json args = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return args.is_object() ? args : json::object();
}

json TokenJson(const std::string& token, float logprob) {
  json j{{"token", token}, {"logprob", static_cast<double>(logprob)}};
  if (!token.empty()) {
    json bytes = json::array();
    for (unsigned char b : token) bytes.push_back(static_cast<int>(b));
    j["bytes"] = std::move(bytes);
  }
  return j;
}

}  // namespace

json OllamaToolCalls(const std::vector<runner::ToolCall>& calls, size_t first_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const runner::ToolCall& c = calls[i];
    json call{{"function", {{"index", first_index + i}, {"name", c.name}, {"arguments", Arguments(c.arguments)}}}};
    if (!c.id.empty()) call["id"] = c.id;
    out.push_back(std::move(call));
  }
  return out;
}

json OpenAiToolCalls(const std::vector<runner::ToolCall>& calls, size_t first_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const runner::ToolCall& c = calls[i];
    out.push_back(json{{"id", c.id},
                       {"index", first_index + i},
                       {"type", "function"},
                       {"function", {{"name", c.name}, {"arguments", Arguments(c.arguments).dump(-1, ' ', false, json::error_handler_t::replace)}}}});
  }
  return out;
}

json LogprobsJson(const std::vector<runner::TokenLogprob>& logprobs) {
  json out = json::array();
  for (const runner::TokenLogprob& lp : logprobs) {
    json j = TokenJson(lp.token, lp.logprob);
    if (!lp.top.empty()) {
      json top = json::array();
      for (const runner::TopLogprob& t : lp.top) top.push_back(TokenJson(t.token, t.logprob));
      j["top_logprobs"] = std::move(top);
    }
    out.push_back(std::move(j));
  }
  return out;
}

json CompletionLogprobsJson(const std::vector<runner::TokenLogprob>& logprobs) {
  json tokens = json::array(), values = json::array(), tops = json::array();
  bool any_top = false;
  for (const runner::TokenLogprob& lp : logprobs) {
    tokens.push_back(lp.token);
    values.push_back(static_cast<double>(lp.logprob));
    json top = json::object();
    for (const runner::TopLogprob& t : lp.top) {
      if (!top.contains(t.token)) top[t.token] = static_cast<double>(t.logprob);  // the likeliest of equal texts
    }
    any_top = any_top || !lp.top.empty();
    tops.push_back(std::move(top));
  }
  return json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(values)},
              {"top_logprobs", any_top ? std::move(tops) : json(nullptr)}};
}

}  // namespace resident::api
