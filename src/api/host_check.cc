#include "api/host_check.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>

#include "api/cors.h"

namespace resident::api {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool LocalIpv4(uint32_t a /* host order */) {
  const uint32_t b0 = a >> 24, b1 = (a >> 16) & 0xff;
  return b0 == 127 || a == 0 || b0 == 10 || (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168);
}

// One of this machine's interface addresses.
bool OwnAddress(int family, const void* addr) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return false;
  bool found = false;
  for (ifaddrs* i = list; i != nullptr && !found; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != family) continue;
    if (family == AF_INET) {
      found = std::memcmp(&reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, addr, sizeof(in_addr)) == 0;
    } else {
      found = std::memcmp(&reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, addr, sizeof(in6_addr)) == 0;
    }
  }
  ::freeifaddrs(list);
  return found;
}

// The host of an origin pattern: "https://*.example.com:*" -> "*.example.com"; "" when the
// pattern names no host ("*", "app://*").
std::string OriginHost(std::string_view origin) {
  size_t scheme = origin.find("://");
  std::string_view rest = scheme == std::string_view::npos ? origin : origin.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  std::string host(HostWithoutPort(rest));
  if (host.empty() || host == "*") return "";
  return Lower(host);
}

}  // namespace

std::string_view HostWithoutPort(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    return close == std::string_view::npos ? h : h.substr(1, close - 1);
  }
  size_t colon = h.find(':');
  if (colon != std::string_view::npos && h.find(':', colon + 1) != std::string_view::npos) return h;  // bare IPv6
  return h.substr(0, colon);
}

bool IsLocalAddress(std::string_view host, bool check_interfaces) {
  std::string text(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return LocalIpv4(ntohl(v4.s_addr)) || (check_interfaces && OwnAddress(AF_INET, &v4));
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(&v4, &v6.s6_addr[12], sizeof v4);
    return LocalIpv4(ntohl(v4.s_addr)) || (check_interfaces && OwnAddress(AF_INET, &v4));
  }
  if (IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_UNSPECIFIED(&v6) || (v6.s6_addr[0] & 0xfe) == 0xfc) return true;
  return check_interfaces && OwnAddress(AF_INET6, &v6);
}

HostPolicy::HostPolicy(const std::vector<std::string>& origins, const std::string& listen_host) {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) == 0) hostname_ = Lower(name);
  for (const std::string& o : origins) {
    if (std::string h = OriginHost(o); !h.empty()) patterns_.push_back(std::move(h));
  }
  if (std::string h = Lower(HostWithoutPort(listen_host)); !h.empty()) patterns_.push_back(std::move(h));
}

bool HostPolicy::Allows(std::string_view host_header) const {
  const std::string host = Lower(HostWithoutPort(host_header));
  if (host.empty() || host == "localhost") return true;
  if (!hostname_.empty() && host == hostname_) return true;
  for (std::string_view tld : {".localhost", ".local", ".internal"}) {
    if (EndsWith(host, tld)) return true;
  }
  if (IsLocalAddress(host)) return true;
  return std::any_of(patterns_.begin(), patterns_.end(),
                     [&](const std::string& p) { return OriginMatches(p, host); });
}

}  // namespace resident::api
