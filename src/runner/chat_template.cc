#include "runner/chat_template.h"

#include <exception>

#include "chat.h"  // llama.cpp common/

namespace resident::runner {

struct ChatTemplate::Impl {
  common_chat_templates_ptr templates;
  ChatTemplateSource source;
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

Result<std::string> ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                         bool add_generation_prompt) const {
  try {
    common_chat_templates_inputs inputs;
    inputs.use_jinja = true;
    inputs.add_generation_prompt = add_generation_prompt;
    for (const ChatMessage& m : messages) {
      common_chat_msg msg;
      msg.role = m.role;
      msg.content = m.content;
      inputs.messages.push_back(std::move(msg));
    }
    std::string prompt = common_chat_templates_apply(impl_->templates.get(), inputs).prompt;
    const ChatTemplateSource& s = impl_->source;
    if (s.add_bos && !s.bos.empty() && prompt.starts_with(s.bos)) prompt.erase(0, s.bos.size());
    if (s.add_eos && !s.eos.empty() && prompt.ends_with(s.eos)) prompt.resize(prompt.size() - s.eos.size());
    return prompt;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("cannot apply the model's chat template: ") + e.what());
  }
}

}  // namespace resident::runner
