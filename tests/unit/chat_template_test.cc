// ChatTemplate without a model (as the template sandbox runs it): the text, the BOS/EOS facts.
#include "runner/chat_template.h"

#include <gtest/gtest.h>

namespace resident::runner {
namespace {

TEST(ChatTemplate, ALeadingBosIsDroppedWhenTheTokenizerAddsItAsLlamaCppDoes) {
  ChatTemplateSource s;
  s.text = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}{{ eos_token }}";
  s.bos = "<s>";
  s.eos = "</s>";
  s.overridden = true;
  auto keep = ChatTemplate::Create(s);
  ASSERT_TRUE(keep.ok()) << keep.status().message();
  auto text = (*keep)->Render({{"user", "hi"}}, true);
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text, "<s>[user] hi</s>");
  s.add_bos = s.add_eos = true;
  auto drop = ChatTemplate::Create(s);
  ASSERT_TRUE(drop.ok());
  EXPECT_EQ(*(*drop)->Render({{"user", "hi"}}, true), "[user] hi");
}

TEST(ChatTemplate, ChatmlIsTheFallbackAndErrorsSayWhichTemplate) {
  ChatTemplateSource s;
  s.text = "chatml";
  auto t = ChatTemplate::Create(s);
  ASSERT_TRUE(t.ok());
  auto text = (*t)->Render({{"user", "hi"}}, true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  s.text = "{% for %}";
  s.overridden = true;
  auto bad = ChatTemplate::Create(s);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("cannot parse the TEMPLATE"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace resident::runner
