// Which Host headers a server listening on loopback serves: the defence against DNS rebinding,
// decided as Ollama's allowedHostsMiddleware decides it (server/routes.go).
//
// A page on attacker.example whose name the attacker points at 127.0.0.1 can have the browser
// send requests to the local server as if they were same-origin: no Origin header, no CORS. The
// one thing the page cannot change is the Host header, which names the attacker's domain. So a
// server that listens on loopback only answers requests whose Host (port aside, compared
// case-insensitively) is
// - empty (an HTTP/1.0 request without one), "localhost", a name under .localhost, .local or
//   .internal, or this machine's host name (gethostname);
// - an IP address that is loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
//   unspecified (0.0.0.0, ::) or one of this machine's own (an IPv4-mapped IPv6 address counts
//   as its IPv4 address): a page cannot make a browser send an address it does not own;
// - resident's additions: the host of the listen address (RESIDENT_HOST), and the host of every
//   origin in RESIDENT_ORIGINS / OLLAMA_ORIGINS ("https://app.example.com" allows Host
//   app.example.com, "http://*.example.com:*" any name under example.com): a name someone chose
//   to let browsers use. A bare "*" allows every origin, not every Host.
// Anything else is 403. A server listening on other addresses (0.0.0.0, a LAN address) is reached
// by name from other machines and does not check Host (protect it with RESIDENT_API_KEY).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace resident::api {

// The host part of a Host header value: "[::1]:80" -> "::1", "a.b:80" -> "a.b", "a.b" -> "a.b".
std::string_view HostWithoutPort(std::string_view host_header);

// True when `host` (no port) is an IP address Ollama serves on loopback: loopback, private,
// unspecified, or (with `check_interfaces`) an address of one of this machine's interfaces.
bool IsLocalAddress(std::string_view host, bool check_interfaces = true);

class HostPolicy {
 public:
  // `origins`: the extra CORS origins (RESIDENT_ORIGINS / OLLAMA_ORIGINS, not the defaults);
  // `listen_host`: the host the server was asked to listen on. Constant after construction.
  HostPolicy(const std::vector<std::string>& origins, const std::string& listen_host);

  // True when a request with this Host header value is served on a loopback listener.
  bool Allows(std::string_view host_header) const;

 private:
  std::string hostname_;                 // this machine's, lower case ("" if unknown)
  std::vector<std::string> patterns_;    // lower case host patterns (at most one '*' each)
};

}  // namespace resident::api
