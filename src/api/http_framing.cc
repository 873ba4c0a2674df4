#include "api/http_framing.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

namespace resident::api {
namespace {

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A field value byte (RFC 9110 5.5): VCHAR, obs-text, SP, HT. Everything else is a control.
bool IsFieldValueByte(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// A piece of client input quoted in a message: at most 40 bytes, printable ASCII only.
std::string Quote(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    auto u = static_cast<unsigned char>(c);
    out += u >= 0x20 && u < 0x7f ? c : '?';
  }
  if (s.size() > 40) out += "...";
  return out;
}

// Host = uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2): a bracketed IP literal, or
// reg-name / IPv4 characters; the port digits only. Empty is allowed (RFC 9112 3.2).
bool IsValidHost(std::string_view v) {
  if (v.empty()) return true;
  std::string_view port;
  if (v.front() == '[') {
    size_t close = v.find(']');
    if (close == std::string_view::npos) return false;
    for (char c : v.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.' && c != 'v' && c != 'V') return false;
    }
    std::string_view rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
  } else {
    size_t colon = v.find(':');
    std::string_view name = v.substr(0, colon);
    if (colon != std::string_view::npos) port = v.substr(colon + 1);
    for (char c : name) {
      if (std::isalnum(static_cast<unsigned char>(c))) continue;
      if (std::string_view("-._~!$&'()*+,;=%").find(c) == std::string_view::npos) return false;
    }
  }
  return std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool IsTokenChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::variant<RequestFraming, FramingError> CheckRequestHead(std::string_view head) {
  auto bad = [](std::string message) { return FramingError{400, std::move(message)}; };
  // Lines, each ended by CR LF: a LF without CR before it, or a CR not followed by LF, is no
  // line end any reading agrees on.
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < head.size(); ++i) {
    if (head[i] == '\r') {
      if (i + 1 >= head.size() || head[i + 1] != '\n') {
        return bad("a bare CR in the request head (lines end with CR LF)");
      }
      lines.push_back(head.substr(start, i - start));
      start = i + 2;
      ++i;
    } else if (head[i] == '\n') {
      return bad("a line of the request head ends with LF alone (lines end with CR LF)");
    }
  }
  if (start != head.size() || lines.size() < 2 || !lines.back().empty()) {
    return bad("the request head does not end with an empty line");
  }
  lines.pop_back();  // the empty line

  RequestFraming framing;
  const std::string_view request_line = lines.front();
  if (request_line.empty()) return bad("an empty request line");
  for (char c : request_line) {
    if (!IsFieldValueByte(c) || c == '\t') return bad("the request line holds a control character");
  }
  size_t sp = request_line.rfind(' ');
  framing.http10 = sp != std::string_view::npos && request_line.substr(sp + 1) == "HTTP/1.0";

  std::optional<uint64_t> content_length;
  std::string content_length_text;
  std::vector<std::string> codings;
  std::string transfer_encoding_text;
  bool has_transfer_encoding = false;
  int hosts = 0;
  for (size_t n = 1; n < lines.size(); ++n) {
    std::string_view line = lines[n];
    if (IsOws(line.front())) {
      return bad("a folded header line (a line that starts with a space or tab continues none here)");
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return bad(fmt::format("a header line without a colon: \"{}\"", Quote(line)));
    std::string_view name = line.substr(0, colon);
    if (name.empty()) return bad("a header line without a name");
    if (IsOws(name.back())) {
      return bad(fmt::format("whitespace between the header name \"{}\" and its colon", Quote(TrimOws(name))));
    }
    if (!std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return bad(fmt::format("a header name that is not a token: \"{}\"", Quote(name)));
    }
    std::string_view value = TrimOws(line.substr(colon + 1));
    for (char c : value) {
      if (!IsFieldValueByte(c)) {
        return bad(fmt::format("the value of header \"{}\" holds the control character 0x{:02x}", Quote(name),
                               static_cast<unsigned char>(c)));
      }
    }
    if (EqualsNoCase(name, "Content-Length")) {
      // A list of identical values may stand for one (RFC 9112 6.3); anything else is refused.
      std::string_view rest = value;
      while (true) {
        size_t comma = rest.find(',');
        std::string_view item = TrimOws(rest.substr(0, comma));
        if (item.empty() || !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          return bad(fmt::format("Content-Length \"{}\" is not a number of bytes", Quote(value)));
        }
        uint64_t v = 0;
        for (char c : item) {
          uint64_t digit = static_cast<uint64_t>(c - '0');
          v = v > (UINT64_MAX - digit) / 10 ? UINT64_MAX : v * 10 + digit;  // saturates: "too large" (413)
        }
        if (content_length && *content_length != v) {
          return bad(fmt::format("two different Content-Length values ({} and {})", content_length_text, Quote(item)));
        }
        content_length = v;
        content_length_text = Quote(item);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    } else if (EqualsNoCase(name, "Transfer-Encoding")) {
      has_transfer_encoding = true;
      if (!transfer_encoding_text.empty()) transfer_encoding_text += ", ";
      transfer_encoding_text += value;
      std::string_view rest = value;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view item = TrimOws(rest.substr(0, comma));
        std::string_view coding = TrimOws(item.substr(0, item.find(';')));  // parameters aside
        if (!item.empty()) {
          if (coding.empty() || !std::all_of(coding.begin(), coding.end(), IsTokenChar)) {
            return bad(fmt::format("Transfer-Encoding \"{}\" is not a list of codings", Quote(value)));
          }
          codings.push_back(Lower(coding));
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    } else if (EqualsNoCase(name, "Host")) {
      if (++hosts > 1) return bad("more than one Host header");
      if (!IsValidHost(value)) return bad(fmt::format("Host \"{}\" is not a host name or address", Quote(value)));
    }
  }
  if (hosts == 0 && !framing.http10) return bad("an HTTP/1.1 request without a Host header");

  if (has_transfer_encoding) {
    const std::string te = Quote(transfer_encoding_text);
    if (content_length) {
      return bad("Content-Length together with Transfer-Encoding: the body's length is ambiguous");
    }
    if (framing.http10) return bad("Transfer-Encoding on an HTTP/1.0 request");
    if (codings.empty()) return bad("an empty Transfer-Encoding");
    if (codings.back() != "chunked") {
      return bad(fmt::format("Transfer-Encoding \"{}\": the last coding must be chunked", te));
    }
    if (std::count(codings.begin(), codings.end(), "chunked") > 1) {
      return bad(fmt::format("Transfer-Encoding \"{}\": chunked applied more than once", te));
    }
    if (codings.size() > 1) {
      return FramingError{501, fmt::format("Transfer-Encoding \"{}\": only chunked is supported", te)};
    }
    framing.body = RequestFraming::Body::kChunked;
    return framing;
  }
  if (content_length) {
    framing.body = RequestFraming::Body::kLength;
    framing.content_length = *content_length;
  }
  return framing;
}

// ---- ChunkedBodyChecker -------------------------------------------------------------------

ChunkedBodyChecker::Verdict ChunkedBodyChecker::Fail(std::string message, int status) {
  if (state_ != State::kError) error_ = FramingError{status, std::move(message)};
  state_ = State::kError;
  return Verdict::kError;
}

size_t ChunkedBodyChecker::TakeData(size_t available) {
  if (state_ != State::kData) return 0;
  size_t n = static_cast<size_t>(std::min<uint64_t>(available, chunk_left_));
  chunk_left_ -= n;
  if (chunk_left_ == 0) state_ = State::kDataCr;
  return n;
}

ChunkedBodyChecker::Verdict ChunkedBodyChecker::Feed(char c) {
  const auto u = static_cast<unsigned char>(c);
  switch (state_) {
    case State::kSize:
    case State::kExt: {
      if (++line_bytes_ > kMaxSizeLine) {
        return Fail(fmt::format("a chunk-size line longer than {} bytes", kMaxSizeLine));
      }
      if (c == '\r') {
        if (!any_digit_) return Fail("a chunk without a size (chunk-size is hex digits)");
        state_ = State::kSizeLf;
        return Verdict::kPass;
      }
      if (state_ == State::kSize && std::isxdigit(u)) {
        if (chunk_size_ >> 60 != 0) return Fail("a chunk size larger than 2^64 bytes");
        chunk_size_ = chunk_size_ * 16 + static_cast<uint64_t>(std::isdigit(u) ? u - '0' : std::tolower(u) - 'a' + 10);
        any_digit_ = true;
        return Verdict::kPass;
      }
      if (!any_digit_) {
        return Fail(fmt::format("a malformed chunk size: it starts with 0x{:02x}, not a hex digit", u));
      }
      // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): after the digits only spaces
      // until the ";", then visible characters.
      if (state_ == State::kSize) state_ = State::kExt;
      if (!ext_started_) {
        if (c == ';') {
          ext_started_ = true;
          return Verdict::kPass;
        }
        if (IsOws(c)) return Verdict::kPass;
        return Fail(fmt::format("a malformed chunk size: 0x{:02x} after its hex digits", u));
      }
      if (!IsFieldValueByte(c)) return Fail(fmt::format("a chunk extension holds the control character 0x{:02x}", u));
      return Verdict::kPass;
    }
    case State::kSizeLf:
      if (c != '\n') return Fail("a chunk-size line not ended by CR LF");
      line_bytes_ = 0;
      any_digit_ = false;
      ext_started_ = false;
      if (chunk_size_ == 0) {
        state_ = State::kTrailerStart;
        return Verdict::kPass;
      }
      if (max_body_ != 0 && chunk_size_ > max_body_ - std::min(total_, max_body_)) {
        return Fail(too_large_, 413);
      }
      total_ += chunk_size_;
      chunk_left_ = chunk_size_;
      chunk_size_ = 0;
      state_ = State::kData;
      return Verdict::kPass;
    case State::kData:
      // TakeData passes data; a byte fed here is data too.
      if (--chunk_left_ == 0) state_ = State::kDataCr;
      return Verdict::kPass;
    case State::kDataCr:
      if (c != '\r') return Fail("a chunk's data is longer than its size (no CR LF after it)");
      state_ = State::kDataLf;
      return Verdict::kPass;
    case State::kDataLf:
      if (c != '\n') return Fail("a chunk's data is not followed by CR LF");
      state_ = State::kSize;
      return Verdict::kPass;
    case State::kTrailerStart:
      if (c == '\r') {
        state_ = State::kEndLf;
        return Verdict::kPass;
      }
      trailer_colon_ = false;
      trailer_name_len_ = 0;
      state_ = State::kTrailer;
      [[fallthrough]];
    case State::kTrailer:
      // Trailer fields are read and dropped: httplib takes none.
      if (++trailer_bytes_ > kMaxTrailer) return Fail(fmt::format("trailer fields longer than {} bytes", kMaxTrailer));
      if (c == '\r') {
        if (!trailer_colon_) return Fail("a trailer line without a colon");
        state_ = State::kTrailerLf;
        return Verdict::kDrop;
      }
      if (!trailer_colon_) {
        if (c == ':' && trailer_name_len_ > 0) {
          trailer_colon_ = true;
        } else if (IsTokenChar(c)) {
          ++trailer_name_len_;
        } else {
          return Fail("a malformed trailer field name");
        }
      } else if (!IsFieldValueByte(c)) {
        return Fail(fmt::format("a trailer field holds the control character 0x{:02x}", u));
      }
      return Verdict::kDrop;
    case State::kTrailerLf:
      if (c != '\n') return Fail("a trailer line not ended by CR LF");
      state_ = State::kTrailerStart;
      return Verdict::kDrop;
    case State::kEndLf:
      if (c != '\n') return Fail("the chunked body does not end with CR LF");
      state_ = State::kDone;
      return Verdict::kPass;
    case State::kDone:
      return Fail("bytes past the end of the chunked body");
    case State::kError:
      return Verdict::kError;
  }
  return Verdict::kError;
}

}  // namespace resident::api
