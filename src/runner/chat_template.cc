#include "runner/chat_template.h"

#include <exception>

#include "chat.h"  // llama.cpp common/

namespace resident::runner {

struct ChatTemplate::Impl {
  common_chat_templates_ptr templates;
};

ChatTemplate::ChatTemplate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChatTemplate::~ChatTemplate() = default;

Result<std::unique_ptr<ChatTemplate>> ChatTemplate::Create(const llama_model* model,
                                                          const std::string& override_template) {
  try {
    auto impl = std::make_unique<Impl>();
    impl->templates = common_chat_templates_init(model, override_template);
    return std::unique_ptr<ChatTemplate>(new ChatTemplate(std::move(impl)));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string(override_template.empty() ? "cannot parse the model's chat template: "
                                                                          : "cannot parse the TEMPLATE: ") +
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
    return common_chat_templates_apply(impl_->templates.get(), inputs).prompt;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("cannot apply the model's chat template: ") + e.what());
  }
}

}  // namespace resident::runner
