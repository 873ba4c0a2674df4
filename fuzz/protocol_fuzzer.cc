// The runner protocol: frame payloads (MessagePack) from the other process, and the frame
// reader over a byte stream. A payload that decodes must encode and decode again as the same
// message type.
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "runner/protocol.h"

using namespace resident;

namespace {

bool StreamFitsInput(const uint8_t* data, size_t size) {
  size_t pos = 0;
  while (size - pos >= 4) {
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(data[pos + i]) << (8 * i);
    if (n == 0 || n > runner::kMaxFrameBytes) return true;  // rejected before any allocation
    if (n > size - pos - 4) return false;
    pos += 4 + n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (Result<runner::Message> m = runner::DecodePayload(bytes); m.ok()) {
    const std::string frame = runner::EncodeFrame(*m);
    Result<runner::Message> again = runner::DecodePayload(std::string_view(frame).substr(4));
    FUZZ_CHECK(again.ok() && again->index() == m->index(), "a decoded message does not round-trip: %s",
               again.status().message().c_str());
  }

  // The same bytes as a stream of frames (length prefix + payload) through a pipe. The input is
  // smaller than a pipe's buffer, so it is written whole before reading. Streams where a frame
  // claims more bytes than the input holds are skipped: the reader allocates the claimed length
  // (up to 64 MiB) before reading, which would only slow the fuzzer down.
  if (!StreamFitsInput(data, size)) return 0;
  int fds[2];
  if (size <= 4096 && ::pipe(fds) == 0) {
    ssize_t written = size == 0 ? 0 : ::write(fds[1], data, size);
    ::close(fds[1]);
    if (written == static_cast<ssize_t>(size)) {
      runner::FrameReader reader(fds[0]);
      while (reader.Next().ok()) {
      }
    }
    ::close(fds[0]);
  }
  return 0;
}
