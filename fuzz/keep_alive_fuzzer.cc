// keep_alive: Go durations ("5m", "1h30m", "-1s"), OLLAMA_KEEP_ALIVE-style values and request
// numbers. Every duration that parses must format back to text that parses to the same value
// (Go's Duration.String round-trips through ParseDuration), and a number never gives a
// negative duration.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/keep_alive.h"
#include "fuzz_check.h"

using namespace resident;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (Result<Duration> d = ParseGoDuration(text); d.ok()) {
    const std::string formatted = FormatGoDuration(*d);
    Result<Duration> again = ParseGoDuration(formatted);
    FUZZ_CHECK(again.ok() && *again == *d, "\"%s\" formats as \"%s\", which does not parse back",
               std::string(text).c_str(), formatted.c_str());
    FUZZ_CHECK(!KeepAlive::Of(*d).ToString().empty(), "empty ToString");
  }

  if (std::optional<KeepAlive> k = ParseKeepAliveEnv(text)) {
    FUZZ_CHECK(k->forever || k->duration >= Duration::zero(), "negative env keep_alive");
  }

  KeepAliveInput as_string{KeepAliveInput::Kind::kString, 0, std::string(text)};
  (void)ParseKeepAlive(as_string);

  if (size >= sizeof(double)) {
    KeepAliveInput as_number{KeepAliveInput::Kind::kNumber, 0, ""};
    std::memcpy(&as_number.number, data, sizeof(double));
    if (Result<KeepAlive> k = ParseKeepAlive(as_number); k.ok()) {
      FUZZ_CHECK(k->forever || k->duration >= Duration::zero(), "negative keep_alive from a number");
    }
  }
  return 0;
}
