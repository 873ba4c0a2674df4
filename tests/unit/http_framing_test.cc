// CheckRequestHead and ChunkedBodyChecker: RFC 9112 framing, one case per way a head or a chunked
// body can be ambiguous (the reproductions of issue 20, item 7, among them).
#include "api/http_framing.h"

#include <gtest/gtest.h>

#include <string>

namespace resident::api {
namespace {
using namespace std::string_literals;

RequestFraming Accepted(const std::string& head) {
  auto r = CheckRequestHead(head);
  if (auto* e = std::get_if<FramingError>(&r)) {
    ADD_FAILURE() << "refused (" << e->status << " " << e->message << "): " << head;
    return {};
  }
  return std::get<RequestFraming>(r);
}

FramingError Refused(const std::string& head) {
  auto r = CheckRequestHead(head);
  if (auto* e = std::get_if<FramingError>(&r)) return *e;
  ADD_FAILURE() << "accepted: " << head;
  return {};
}

std::string Post(const std::string& headers) {
  return "POST /api/generate HTTP/1.1\r\nHost: localhost:11434\r\n" + headers + "\r\n";
}

TEST(CheckRequestHead, PlainRequestsAndTheirBodies) {
  EXPECT_EQ(Accepted("GET / HTTP/1.1\r\nHost: x\r\n\r\n").body, RequestFraming::Body::kNone);
  RequestFraming len = Accepted(Post("Content-Length: 42\r\n"));
  EXPECT_EQ(len.body, RequestFraming::Body::kLength);
  EXPECT_EQ(len.content_length, 42u);
  EXPECT_EQ(Accepted(Post("Transfer-Encoding: chunked\r\n")).body, RequestFraming::Body::kChunked);
  EXPECT_EQ(Accepted(Post("transfer-encoding: CHUNKED\r\n")).body, RequestFraming::Body::kChunked);
  // A list of one value repeated stands for that value (RFC 9112 6.3).
  EXPECT_EQ(Accepted(Post("Content-Length: 7, 7\r\nContent-Length: 7\r\n")).content_length, 7u);
  // Values may have spaces around them; names are case-insensitive; obs-text is allowed.
  EXPECT_EQ(Accepted(Post("content-length:   5  \r\nX-Name: caf\xc3\xa9\tok\r\n")).content_length, 5u);
  // HTTP/1.0 may omit Host; a huge length saturates (the body limit's 413 follows).
  EXPECT_TRUE(Accepted("GET / HTTP/1.0\r\n\r\n").http10);
  EXPECT_EQ(Accepted(Post("Content-Length: 99999999999999999999999\r\n")).content_length, UINT64_MAX);
  EXPECT_EQ(Accepted("GET / HTTP/1.1\r\nHost: [::1]:11434\r\n\r\n").body, RequestFraming::Body::kNone);
  EXPECT_EQ(Accepted("GET / HTTP/1.1\r\nHost:\r\n\r\n").body, RequestFraming::Body::kNone);
}

TEST(CheckRequestHead, ContentLengthWithTransferEncodingIsRefused) {
  FramingError e = Refused(Post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"));
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("Content-Length together with Transfer-Encoding"), std::string::npos) << e.message;
  EXPECT_EQ(Refused(Post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n")).status, 400);
}

TEST(CheckRequestHead, TransferEncodingOtherThanChunkedIsRefused) {
  for (const char* te : {"xchunked", "chunked, identity", "identity", "chunkedx", "gzip", "chunked;q=1, gzip"}) {
    FramingError e = Refused(Post(std::string("Transfer-Encoding: ") + te + "\r\n"));
    EXPECT_EQ(e.status, 400) << te;
    EXPECT_NE(e.message.find("last coding must be chunked"), std::string::npos) << te << ": " << e.message;
  }
  // Understood framing, a coding not implemented: 501.
  FramingError gzip = Refused(Post("Transfer-Encoding: gzip, chunked\r\n"));
  EXPECT_EQ(gzip.status, 501) << gzip.message;
  EXPECT_NE(gzip.message.find("only chunked"), std::string::npos) << gzip.message;
  // Two header lines make one list.
  EXPECT_EQ(Refused(Post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n")).status, 400);
  EXPECT_EQ(Refused(Post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")).status, 400);
  EXPECT_EQ(Refused(Post("Transfer-Encoding: \r\n")).status, 400);
  EXPECT_EQ(Refused(Post("Transfer-Encoding: %63hunked\r\n")).status, 400);  // httplib would decode it
  EXPECT_EQ(Refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").status, 400);
}

TEST(CheckRequestHead, BadOrConflictingContentLengthsAreRefused) {
  FramingError two = Refused(Post("Content-Length: 5\r\nContent-Length: 6\r\n"));
  EXPECT_EQ(two.status, 400);
  EXPECT_NE(two.message.find("two different Content-Length values (5 and 6)"), std::string::npos) << two.message;
  EXPECT_EQ(Refused(Post("Content-Length: 5, 6\r\n")).status, 400);
  for (const char* v : {"-1", "abc", "+5", "5 5", "0x10", "1e3", "", "%35", "5;"}) {
    FramingError e = Refused(Post(std::string("Content-Length: ") + v + "\r\n"));
    EXPECT_EQ(e.status, 400) << v;  // not 413
    EXPECT_NE(e.message.find("is not a number of bytes"), std::string::npos) << v << ": " << e.message;
  }
}

TEST(CheckRequestHead, ControlBytesAndMalformedLinesAreRefused) {
  FramingError nul = Refused(Post("X-Evil: a\0b\r\n"s));
  EXPECT_EQ(nul.status, 400);
  EXPECT_NE(nul.message.find("control character 0x00"), std::string::npos) << nul.message;
  EXPECT_NE(nul.message.find("X-Evil"), std::string::npos) << nul.message;
  for (char c : {'\x01', '\x1b', '\x7f', '\x0b'}) {
    EXPECT_EQ(Refused(Post(std::string("X-Evil: a") + c + "b\r\n")).status, 400) << static_cast<int>(c);
  }
  EXPECT_EQ(Accepted(Post("X-Tab: a\tb\r\n")).body, RequestFraming::Body::kNone);  // HT is fine
  EXPECT_NE(Refused(Post("Content-Length : 5\r\n")).message.find("whitespace between"), std::string::npos);
  EXPECT_NE(Refused(Post("X-Folded: a\r\n b\r\n")).message.find("folded"), std::string::npos);
  EXPECT_NE(Refused(Post("no colon here\r\n")).message.find("without a colon"), std::string::npos);
  EXPECT_EQ(Refused(Post("Bad Name: x\r\n")).status, 400);
  EXPECT_EQ(Refused(Post(": x\r\n")).status, 400);
  // Line ends: LF alone, or CR alone, is no line end every reader agrees on.
  EXPECT_NE(Refused("GET / HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\n").message.find("LF alone"),
            std::string::npos);
  EXPECT_NE(Refused("GET / HTTP/1.1\r\nHost: x\rContent-Length: 5\r\n\r\n").message.find("bare CR"),
            std::string::npos);
  EXPECT_EQ(Refused("GET / HTTP/1.1\r\nHost: x\r\n\n").status, 400);
  EXPECT_EQ(Refused("GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n"s).status, 400);
}

TEST(CheckRequestHead, HostMustBeOneHostAndPort) {
  EXPECT_NE(Refused("GET / HTTP/1.1\r\n\r\n").message.find("without a Host"), std::string::npos);
  EXPECT_NE(Refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").message.find("more than one Host"),
            std::string::npos);
  for (const char* h : {"a b", "a/b", "a@b", "x:80x", "[::1", "[::1]x"}) {
    EXPECT_EQ(Refused(std::string("GET / HTTP/1.1\r\nHost: ") + h + "\r\n\r\n").status, 400) << h;
  }
}

// Feeds `body` to a checker the way the connection stream does; returns what passes, or
// "ERROR <status> <message>".
std::string Dechunk(const std::string& body, uint64_t limit = 0, bool* done = nullptr) {
  ChunkedBodyChecker c(limit, "too large");
  std::string out;
  for (size_t i = 0; i < body.size();) {
    if (size_t k = c.TakeData(body.size() - i); k > 0) {
      out += body.substr(i, k);
      i += k;
      continue;
    }
    auto v = c.Feed(body[i]);
    if (v == ChunkedBodyChecker::Verdict::kError) {
      return "ERROR " + std::to_string(c.error().status) + " " + c.error().message;
    }
    if (v == ChunkedBodyChecker::Verdict::kPass) out += body[i];
    ++i;
    if (c.done() && i < body.size()) return "ERROR past the end";
  }
  if (done) *done = c.done();
  return out;
}

TEST(ChunkedBodyChecker, PassesWellFormedBodiesAndDropsTrailers) {
  bool done = false;
  EXPECT_EQ(Dechunk("5\r\nhello\r\n0\r\n\r\n", 0, &done), "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_TRUE(done);
  EXPECT_EQ(Dechunk("A;name=value;x=\"q s\"\r\n0123456789\r\n0\r\n\r\n"),
            "A;name=value;x=\"q s\"\r\n0123456789\r\n0\r\n\r\n");
  EXPECT_EQ(Dechunk("00005 ;ext\r\nhello\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", 0, &done),
            "00005 ;ext\r\nhello\r\n0\r\n\r\n");
  EXPECT_TRUE(done);
  Dechunk("5\r\nhel", 0, &done);
  EXPECT_FALSE(done);
}

TEST(ChunkedBodyChecker, MalformedChunksAreA400WithAMessage) {
  for (const char* body : {"zz\r\n", "-1\r\n", "+5\r\n", "0x5\r\nhello\r\n", " 5\r\n", "\r\n", "5\nhello\r\n",
                           "5\r\nhelloX\r\n", "5\r\nhello\n0\r\n\r\n", "5 x\r\n", "5;a\x01\r\n",
                           "0\r\nbad trailer\r\n\r\n", "0\r\n\r\r", "11111111111111111\r\n"}) {
    std::string got = Dechunk(body);
    EXPECT_EQ(got.rfind("ERROR 400 ", 0), 0u) << body << " -> " << got;
    EXPECT_GT(got.size(), 14u) << got;  // a message, not just "error"
  }
  EXPECT_NE(Dechunk("zz\r\n").find("malformed chunk size"), std::string::npos);
  EXPECT_NE(Dechunk("5;" + std::string(2000, 'e') + "\r\n").find("longer than 1024"), std::string::npos);
}

TEST(ChunkedBodyChecker, DataBeyondTheLimitIsA413) {
  EXPECT_EQ(Dechunk("5\r\nhello\r\n0\r\n\r\n", 5), "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(Dechunk("5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n", 5), "ERROR 413 too large");
  EXPECT_EQ(Dechunk("ffffffffffffffff\r\n", 1 << 20), "ERROR 413 too large");
}

}  // namespace
}  // namespace resident::api
