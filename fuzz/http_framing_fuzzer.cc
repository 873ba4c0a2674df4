// Request heads and chunked bodies as they come off a socket (api/http_framing): the head is
// everything up to the first empty line, the rest is a body. Beyond "no crash": a chunked body
// the checker passed, fed to it again as passed (trailers dropped), passes unchanged.
#include <cstdint>
#include <string>
#include <string_view>

#include "api/http_framing.h"
#include "fuzz_check.h"

using namespace resident;

namespace {

// Feeds `body` as the connection stream does: what passes, whether the body ended (after `used`
// bytes) or was refused.
struct Fed {
  std::string passed;
  bool done = false;
  bool refused = false;
  size_t used = 0;
};

Fed Feed(std::string_view body) {
  api::ChunkedBodyChecker c(1 << 20, "too large");
  Fed f;
  size_t i = 0;
  while (i < body.size() && !c.done()) {
    if (size_t k = c.TakeData(body.size() - i); k > 0) {
      f.passed.append(body.substr(i, k));
      i += k;
      continue;
    }
    auto v = c.Feed(body[i]);
    if (v == api::ChunkedBodyChecker::Verdict::kError) {
      FUZZ_CHECK(!c.error().message.empty(), "a refusal without a message");
      FUZZ_CHECK(c.error().status == 400 || c.error().status == 413, "refusal status %d", c.error().status);
      f.refused = true;
      return f;
    }
    if (v == api::ChunkedBodyChecker::Verdict::kPass) f.passed += body[i];
    ++i;
  }
  f.done = c.done();
  f.used = i;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t end = input.find("\r\n\r\n");
  std::string_view head = end == std::string_view::npos ? input : input.substr(0, end + 4);
  std::string_view body = end == std::string_view::npos ? std::string_view() : input.substr(end + 4);
  auto checked = api::CheckRequestHead(head);
  if (auto* e = std::get_if<api::FramingError>(&checked)) {
    FUZZ_CHECK(!e->message.empty(), "a refusal without a message");
    FUZZ_CHECK(e->status == 400 || e->status == 501, "refusal status %d", e->status);
    body = input;  // the body checker on its own, too
  } else {
    FUZZ_CHECK(head.size() >= 4 && head.substr(head.size() - 4) == "\r\n\r\n", "accepted a head not ended");
    FUZZ_CHECK(head.find('\0') == std::string_view::npos, "accepted a NUL");
  }
  Fed first = Feed(body);
  if (first.done) {
    Fed again = Feed(first.passed);
    FUZZ_CHECK(again.done && again.used == first.passed.size() && again.passed == first.passed,
               "a passed chunked body does not pass again unchanged");
  }
  return 0;
}
