// The Modelfile parser: instructions, quoting, parameter validation with line numbers.
#include <gtest/gtest.h>

#include "store/modelfile.h"

namespace resident::store {
namespace {

TEST(StoreModelfileTest, ParsesEveryInstruction) {
  auto mf = ParseModelfile(R"(# a comment
from ./models/m.gguf
PARAMETER temperature 0.7
PARAMETER stop "<|im_end|>"
PARAMETER stop </s>
parameter Num_Ctx 4096
PARAMETER use_mmap false
TEMPLATE """{{ if .System }}{{ .System }}{{ end }}
{{ .Prompt }}"""
SYSTEM "You are \"terse\"."
MESSAGE user Hello
MESSAGE assistant """Hi
there"""
LICENSE """MIT
text"""
LICENSE second

)");
  ASSERT_TRUE(mf.ok()) << mf.status().message();
  EXPECT_EQ(mf->from, "./models/m.gguf");
  EXPECT_EQ(mf->from_line, 2);
  ASSERT_EQ(mf->parameters.size(), 5u);
  EXPECT_EQ(mf->parameters[0], (std::pair<std::string, std::string>{"temperature", "0.7"}));
  EXPECT_EQ(mf->parameters[1].second, "<|im_end|>");
  EXPECT_EQ(mf->parameters[2].second, "</s>");
  EXPECT_EQ(mf->parameters[3].first, "num_ctx");
  EXPECT_TRUE(mf->has_template);
  EXPECT_EQ(mf->template_text, "{{ if .System }}{{ .System }}{{ end }}\n{{ .Prompt }}");
  EXPECT_EQ(mf->system, "You are \"terse\".");
  ASSERT_EQ(mf->messages.size(), 2u);
  EXPECT_EQ(mf->messages[1], (std::pair<std::string, std::string>{"assistant", "Hi\nthere"}));
  ASSERT_EQ(mf->licenses.size(), 2u);
  EXPECT_EQ(mf->licenses[0], "MIT\ntext");
}

void ExpectError(const std::string& text, const std::string& fragment) {
  auto mf = ParseModelfile(text);
  ASSERT_FALSE(mf.ok()) << "accepted: " << text;
  EXPECT_EQ(mf.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mf.status().message().find(fragment), std::string::npos) << mf.status().message();
}

TEST(StoreModelfileTest, ErrorsCarryTheLineNumber) {
  ExpectError("FROM m.gguf\n\nPARAMETER temprature 0.5\n", "line 3: unknown parameter \"temprature\"");
  ExpectError("FROM m.gguf\nPARAMETER temperature hot\n", "line 2: invalid value \"hot\" for parameter temperature");
  ExpectError("FROM m.gguf\nPARAMETER temperature -1\n", "line 2");
  ExpectError("FROM m.gguf\nPARAMETER top_p 1.5\n", "out of range");
  ExpectError("FROM m.gguf\nPARAMETER num_ctx 0\n", "num_ctx");
  ExpectError("FROM m.gguf\nPARAMETER num_ctx 12.5\n", "expected an integer");
  ExpectError("FROM m.gguf\nPARAMETER use_mmap yes\n", "true or false");
  ExpectError("FROM m.gguf\nPARAMETER mirostat 3\n", "mirostat");
  ExpectError("FROM m.gguf\nPARAMETER seed\n", "line 2: PARAMETER seed needs a value");
  ExpectError("FROM m.gguf\nPARAMETER\n", "line 2: PARAMETER needs a name and a value");
  ExpectError("FROM m.gguf\nADAPTER lora.gguf\n", "line 2: ADAPTER is not supported");
  ExpectError("FROM m.gguf\nFOO bar\n", "line 2: unknown instruction \"FOO\"");
  ExpectError("FROM m.gguf\nSYSTEM \"\"\"never\nends\n", "line 2: unterminated");
  ExpectError("FROM m.gguf\nSYSTEM \"open\n", "line 2: unterminated");
  ExpectError("FROM m.gguf\nMESSAGE robot hi\n", "line 2: MESSAGE role");
  ExpectError("FROM a.gguf\nFROM b.gguf\n", "line 2: FROM may appear only once");
  ExpectError("PARAMETER temperature 1\n", "no FROM");
  ExpectError("", "no FROM");
  ExpectError(std::string("FROM m\0.gguf\n", 13), "NUL");
}

TEST(StoreModelfileTest, ValidatesEveryDocumentedParameter) {
  for (const auto& [k, v] :
       std::vector<std::pair<std::string, std::string>>{{"num_ctx", "2048"}, {"num_batch", "512"}, {"num_gpu", "-1"},
                                                        {"num_thread", "4"}, {"use_mmap", "true"}, {"temperature", "0"},
                                                        {"top_k", "40"}, {"top_p", "0.9"}, {"min_p", "0.05"},
                                                        {"typical_p", "1"}, {"seed", "-1"}, {"num_predict", "-2"},
                                                        {"stop", "x"}, {"repeat_penalty", "1.1"}, {"repeat_last_n", "-1"},
                                                        {"presence_penalty", "-0.5"}, {"frequency_penalty", "0.5"},
                                                        {"num_keep", "4"}, {"mirostat", "2"}, {"mirostat_tau", "5"},
                                                        {"mirostat_eta", "0.1"}}) {
    EXPECT_TRUE(ValidateParameter(k, v).ok()) << k << " " << v;
  }
  EXPECT_FALSE(ValidateParameter("num_gqa", "8").ok());
  EXPECT_FALSE(ValidateParameter("temperature", "nan").ok());
  EXPECT_FALSE(ValidateParameter("temperature", "inf").ok());
  EXPECT_FALSE(ValidateParameter("seed", "99999999999999999999999").ok());
  // The ranges are the request options' (core/option_table.h): -1 is "random", below is refused.
  EXPECT_FALSE(ValidateParameter("seed", "-7").ok());
  EXPECT_FALSE(ValidateParameter("temperature", "150").ok());
}

TEST(StoreModelfileTest, AModelfileIsHeldToWhatAModelMayCarry) {
  std::string text = "FROM m\n";
  for (int i = 0; i < 65; ++i) text += "LICENSE l" + std::to_string(i) + "\n";
  auto licenses = ParseModelfile(text);
  ASSERT_FALSE(licenses.ok());
  EXPECT_EQ(licenses.status().message(), "too many licenses: 65 (at most 64)");
  Modelfile mf;
  mf.from = "m";
  mf.template_text = std::string(kMaxTextLayerBytes + 1, 't');
  EXPECT_NE(CheckModelfileLimits(mf).message().find("the template is 16777217 bytes"), std::string::npos);
  mf.template_text.clear();
  for (size_t i = 0; i <= kMaxParameters; ++i) mf.parameters.emplace_back("temperature", "1");
  EXPECT_EQ(CheckModelfileLimits(mf).message(), "too many parameters: 257 (at most 256)");
  mf.parameters.assign(2, {"STOP", std::string(2000, 's')});
  EXPECT_EQ(CheckModelfileLimits(mf).message(), "a stop string of 2000 bytes is too long (at most 1024)");
  mf.parameters.assign(64, {"stop", "s"});
  mf.messages.assign(kMaxMessages, {"user", "c"});
  EXPECT_TRUE(CheckModelfileLimits(mf).ok());
  mf.messages.emplace_back("user", "c");
  EXPECT_EQ(CheckModelfileLimits(mf).message(), "too many messages: 4097 (at most 4096)");
}

TEST(StoreModelfileTest, FormatsParametersAndModelfile) {
  EXPECT_EQ(FormatParameters({{"stop", "</s>"}, {"temperature", "0.7"}}),
            "stop                           \"</s>\"\ntemperature                    0.7");
  ModelEntry e;
  e.name = "m:latest";
  e.path = "/store/blobs/sha256-x";
  e.system = "be brief";
  e.parameters = {{"stop", "</s>"}};
  std::string text = FormatModelfile(e);
  EXPECT_NE(text.find("FROM /store/blobs/sha256-x\n"), std::string::npos);
  EXPECT_NE(text.find("SYSTEM \"\"\"be brief\"\"\""), std::string::npos);
  EXPECT_NE(text.find("PARAMETER stop \"</s>\""), std::string::npos);
  // What FormatModelfile writes parses back.
  auto again = ParseModelfile(text);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->system, "be brief");
}

}  // namespace
}  // namespace resident::store
