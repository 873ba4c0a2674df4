#include "runner/chat_template.h"

#include <exception>
#include <regex>

#include "chat.h"  // llama.cpp common/

namespace resident::runner {

struct ChatTemplate::Impl {
  common_chat_templates_ptr templates;
  ChatTemplateSource source;

  // Drops a leading BOS / trailing EOS the tokenizer adds itself (llama.cpp does the same with
  // the model's vocabulary, which the sandbox does not have).
  std::string Trim(std::string prompt) const {
    const ChatTemplateSource& s = source;
    if (s.add_bos && !s.bos.empty() && prompt.starts_with(s.bos)) prompt.erase(0, s.bos.size());
    if (s.add_eos && !s.eos.empty() && prompt.ends_with(s.eos)) prompt.resize(prompt.size() - s.eos.size());
    return prompt;
  }
};

ChatTemplate::ChatTemplate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChatTemplate::~ChatTemplate() = default;

Result<std::unique_ptr<ChatTemplate>> ChatTemplate::Create(const ChatTemplateSource& source) {
  try {
    auto impl = std::make_unique<Impl>();
    impl->source = source;
    // Without a model, llama.cpp takes the text and the BOS/EOS text as given; the BOS/EOS
    // trimming it would do with the model's vocabulary is done in Render.
    impl->templates = common_chat_templates_init(nullptr, source.text.empty() ? "chatml" : source.text, source.bos, source.eos);
    return std::unique_ptr<ChatTemplate>(new ChatTemplate(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(source.overridden ? "cannot parse the TEMPLATE: "
                                                                 : "cannot parse the model's chat template: ") +
                                   e.what());
  }
}

namespace {

std::vector<common_chat_msg> ToCommon(const std::vector<ChatMessage>& messages) {
  std::vector<common_chat_msg> out;
  out.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    common_chat_msg msg;
    msg.role = m.role;
    msg.content = m.content;
    msg.reasoning_content = m.thinking;
    msg.tool_name = m.tool_name;
    msg.tool_call_id = m.tool_call_id;
    for (const ToolCall& c : m.tool_calls) msg.tool_calls.push_back({c.name, c.arguments, c.id});
    out.push_back(std::move(msg));
  }
  return out;
}

std::string TriggerPattern(const common_grammar_trigger& t) {
  switch (t.type) {
    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
      return t.value;
    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
      // As llama.cpp's sampler anchors it.
      if (t.value.empty()) return "^$";
      return (t.value.front() != '^' ? "^" : "") + t.value + (t.value.back() != '$' ? "$" : "");
    }
    case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:
    case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:  // the token's text (no vocabulary here)
    default:
      return RegexEscape(t.value);
  }
}

}  // namespace

Result<std::string> ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                         bool add_generation_prompt) const {
  try {
    common_chat_templates_inputs inputs;
    inputs.use_jinja = true;
    inputs.add_generation_prompt = add_generation_prompt;
    inputs.messages = ToCommon(messages);
    return impl_->Trim(common_chat_templates_apply(impl_->templates.get(), inputs).prompt);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("cannot apply the model's chat template: ") + e.what());
  }
}

Result<RenderedChat> ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                          const ChatRenderOptions& options) const {
  try {
    common_chat_templates_inputs inputs;
    inputs.use_jinja = true;
    inputs.add_generation_prompt = true;
    inputs.messages = ToCommon(messages);
    for (const ToolDefinition& t : options.tools) {
      inputs.tools.push_back({t.name, t.description, t.parameters.empty() ? "{}" : t.parameters});
    }
    const bool use_tools = !inputs.tools.empty() && options.tool_choice != ToolChoice::kNone;
    inputs.tool_choice = options.tool_choice == ToolChoice::kRequired ? COMMON_CHAT_TOOL_CHOICE_REQUIRED
                         : options.tool_choice == ToolChoice::kNone   ? COMMON_CHAT_TOOL_CHOICE_NONE
                                                                      : COMMON_CHAT_TOOL_CHOICE_AUTO;
    inputs.parallel_tool_calls =
        options.parallel_tool_calls && common_chat_templates_get_caps(impl_->templates.get())["supports_parallel_tool_calls"];
    // Thinking on: extracted into its own field (the "deepseek" format: also while streaming).
    const bool thinking = options.think == Think::kOn;
    inputs.reasoning_format = thinking ? COMMON_REASONING_FORMAT_DEEPSEEK : COMMON_REASONING_FORMAT_NONE;
    inputs.enable_thinking = options.think != Think::kOff;
    if (!options.think_level.empty()) inputs.chat_template_kwargs["reasoning_effort"] = "\"" + options.think_level + "\"";

    common_chat_params params = common_chat_templates_apply(impl_->templates.get(), inputs);
    RenderedChat out;
    out.prompt = impl_->Trim(std::move(params.prompt));
    if (use_tools && !params.grammar.empty()) {
      out.grammar_lazy = params.grammar_lazy;
      out.grammar = params.grammar_lazy ? params.grammar : CallsOnlyGrammar(params.grammar);
      for (const common_grammar_trigger& t : params.grammar_triggers) out.trigger_patterns.push_back(TriggerPattern(t));
      // A lazy grammar without a trigger never applies: llama-server refuses it; here it is dropped.
      if (out.grammar_lazy && out.trigger_patterns.empty()) out.grammar.clear();
    }
    out.preserved_tokens = std::move(params.preserved_tokens);
    out.additional_stops = std::move(params.additional_stops);
    out.parse.format = static_cast<int32_t>(params.format);
    out.parse.generation_prompt = std::move(params.generation_prompt);
    out.parse.parser = std::move(params.parser);
    out.parse.tools = use_tools;
    out.parse.thinking = thinking;
    return out;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("cannot apply the model's chat template: ") + e.what());
  }
}

std::string CallsOnlyGrammar(const std::string& gbnf) {
  // The root rule is one line: `root ::= <generation prompt> space until-N? tool-calls`.
  size_t start = gbnf.starts_with("root ::= ") ? 0 : gbnf.find("\nroot ::= ");
  if (start == std::string::npos) return gbnf;
  if (start != 0) ++start;
  size_t end = gbnf.find('\n', start);
  if (end == std::string::npos) end = gbnf.size();
  static const std::regex kTextBeforeCalls(R"(until-[0-9]+\? (tool-call))");
  std::string root = gbnf.substr(start, end - start);
  std::string strict = std::regex_replace(root, kTextBeforeCalls, "$1");
  if (strict == root) return gbnf;
  return gbnf.substr(0, start) + strict + gbnf.substr(end);
}

std::string RegexEscape(const std::string& text) {
  static const std::string kSpecial = R"(\^$.|?*+()[]{})";  // as llama.cpp's regex_escape
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) {
    if (kSpecial.find(c) != std::string::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace resident::runner
