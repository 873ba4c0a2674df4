// HTTP/1.1 message framing as RFC 9112 defines it, checked before cpp-httplib acts on a request.
//
// httplib (0.11) is lenient where leniency lets one request hide another (request smuggling):
// it takes the first of two Content-Length headers, reads "-1" as 2^64-1 and "abc" as 0, uses
// Content-Length when Transfer-Encoding is anything but exactly "chunked", reads a POST without
// either until the connection closes, accepts a chunk size with a sign or "0x", ends a chunked
// body early at a missing CR LF, skips lines without CR LF and percent-decodes header values.
// BoundedHttpServer's connection stream runs every request head through CheckRequestHead and
// every chunked body through ChunkedBodyChecker, so httplib only ever sees heads and bodies
// whose framing is unambiguous; a refused one is answered here and its connection closed.
//
// What is refused (status, then the connection is closed; the bytes after it never run):
// - 400: a line of the head not ended by CR LF, a bare CR, a folded header line (obs-fold), a
//   header line without a colon or with a name that is not a token (whitespace before the
//   colon), a control byte other than HT in a value (NUL included);
// - 400: Content-Length with Transfer-Encoding; a Content-Length that is not digits, or two
//   that differ; Transfer-Encoding whose last coding is not "chunked" ("xchunked",
//   "chunked, identity"), chunked twice, or any Transfer-Encoding on an HTTP/1.0 request;
// - 501: codings before a final chunked ("gzip, chunked"): understood framing, a coding
//   resident does not implement (RFC 9112 6.1: 501 for a coding not understood);
// - 400: an HTTP/1.1 request without Host, or with two, or a Host that is not a host[:port];
// - in a chunked body, 400: a chunk size that is not 1 to 16 hex digits, a chunk not followed
//   by CR LF, a malformed chunk extension or trailer line; 413: data beyond the body limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <string_view>
#include <variant>

namespace resident::api {

// How the body of a request is delimited.
struct RequestFraming {
  enum class Body { kNone, kLength, kChunked };
  Body body = Body::kNone;
  uint64_t content_length = 0;  // kLength
  bool http10 = false;          // HTTP/1.0 (else 1.1)
};

// Why a request is refused; the connection is closed after the answer.
struct FramingError {
  int status = 400;     // 400, 413 or 501
  std::string message;  // for the client: says which header or byte is wrong
};

// Checks a request head: the request line and header lines, each ended by CR LF, and the empty
// line that ends them. `head` holds exactly that (as received). Returns the body's framing, or
// the refusal. The request line itself is left to httplib (a bad one is its 400).
std::variant<RequestFraming, FramingError> CheckRequestHead(std::string_view head);

// Follows a chunked body byte by byte as it is read (RFC 9112 7.1): chunk-size [chunk-ext] CRLF,
// chunk-data CRLF, ..., last-chunk "0" [chunk-ext] CRLF, trailer fields, CRLF. Trailer fields
// are checked and then dropped (httplib does not take them), everything else passes through.
class ChunkedBodyChecker {
 public:
  enum class Verdict { kPass, kDrop, kError };

  // The longest chunk-size line (digits and extensions) and trailer section taken: httplib holds
  // a whole line in memory.
  static constexpr size_t kMaxSizeLine = 1024;
  static constexpr size_t kMaxTrailer = 8192;

  // `max_body_bytes`: the most chunk data accepted (0: no limit); beyond it the error is a 413
  // with `too_large_message`.
  ChunkedBodyChecker(uint64_t max_body_bytes, std::string too_large_message)
      : max_body_(max_body_bytes), too_large_(std::move(too_large_message)) {}

  // Inside chunk data: up to `available` of the next bytes are data (passed on as they are);
  // returns how many, and takes them. 0 when the next byte is framing (give it to Feed).
  size_t TakeData(size_t available);
  // The next byte of framing: pass it on to httplib, drop it (a trailer field), or the body is
  // malformed (then error() says why; every later byte is an error too).
  Verdict Feed(char c);
  // The final CR LF has been fed: the body is complete, and bytes after it are the next request.
  bool done() const { return state_ == State::kDone; }
  const FramingError& error() const { return error_; }

 private:
  enum class State {
    kSize,         // chunk-size hex digits
    kExt,          // after the size: BWS ";" chunk-ext, up to CR
    kSizeLf,       // CR seen after the size line
    kData,         // chunk-data
    kDataCr,       // the CR after chunk-data
    kDataLf,       // the LF after chunk-data
    kTrailerStart, // the start of a trailer line, or the CR of the empty line that ends the body
    kTrailer,      // inside a trailer field line
    kTrailerLf,    // CR seen at the end of a trailer field line
    kEndLf,        // CR of the final empty line seen
    kDone,
    kError,
  };
  Verdict Fail(std::string message, int status = 400);

  const uint64_t max_body_;
  const std::string too_large_;
  State state_ = State::kSize;
  size_t line_bytes_ = 0;     // of the current chunk-size line
  bool any_digit_ = false;
  bool ext_started_ = false;  // the ";" of an extension was seen
  uint64_t chunk_size_ = 0;
  uint64_t chunk_left_ = 0;
  uint64_t total_ = 0;
  size_t trailer_bytes_ = 0;
  bool trailer_colon_ = false;  // the colon of the current trailer line was seen
  size_t trailer_name_len_ = 0;
  FramingError error_;
};

// RFC 9110 5.6.2 token characters (header names, transfer codings).
bool IsTokenChar(char c);

}  // namespace resident::api
