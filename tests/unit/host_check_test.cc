// HostPolicy: the Host headers a loopback listener serves, as Ollama's allowedHostsMiddleware
// decides, plus the hosts of RESIDENT_ORIGINS and of the listen address.
#include "api/host_check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>

namespace resident::api {
namespace {

TEST(HostWithoutPort, StripsThePort) {
  EXPECT_EQ(HostWithoutPort("localhost:11434"), "localhost");
  EXPECT_EQ(HostWithoutPort("localhost"), "localhost");
  EXPECT_EQ(HostWithoutPort("[::1]:11434"), "::1");
  EXPECT_EQ(HostWithoutPort("[::1]"), "::1");
  EXPECT_EQ(HostWithoutPort("::1"), "::1");
  EXPECT_EQ(HostWithoutPort(""), "");
}

TEST(IsLocalAddress, LoopbackPrivateAndUnspecified) {
  for (const char* a : {"127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                        "0.0.0.0", "::1", "::", "fd00::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"}) {
    EXPECT_TRUE(IsLocalAddress(a, /*check_interfaces=*/false)) << a;
  }
  for (const char* a : {"8.8.8.8", "172.32.0.1", "172.15.0.1", "192.169.0.1", "2001:db8::1", "::ffff:8.8.8.8",
                        "localhost", "127.0.0.1.example", ""}) {
    EXPECT_FALSE(IsLocalAddress(a, /*check_interfaces=*/false)) << a;
  }
}

TEST(HostPolicy, ServesLocalNamesAndAddressesOnly) {
  HostPolicy p({}, "127.0.0.1");
  for (const char* h : {"localhost", "localhost:11434", "LOCALHOST:11434", "127.0.0.1:11434", "[::1]:11434",
                        "app.localhost", "printer.local", "db.internal:5432", "192.168.0.7:11434", "0.0.0.0", ""}) {
    EXPECT_TRUE(p.Allows(h)) << h;
  }
  for (const char* h : {"attacker.example:11434", "attacker.example", "localhost.attacker.example",
                        "127.0.0.1.nip.io", "example.com", "8.8.8.8", "local", "xlocalhost"}) {
    EXPECT_FALSE(p.Allows(h)) << h;
  }
}

TEST(HostPolicy, ThisMachinesNameIsServed) {
  char name[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(::gethostname(name, sizeof name - 1), 0);
  HostPolicy p({}, "127.0.0.1");
  EXPECT_TRUE(p.Allows(std::string(name) + ":11434"));
}

TEST(HostPolicy, OriginsAndTheListenAddressAddHosts) {
  HostPolicy p({"https://app.example.com", "http://*.corp.example:*", "*", "app://*", "file://*"}, "myhost.lan:8080");
  EXPECT_TRUE(p.Allows("app.example.com"));
  EXPECT_TRUE(p.Allows("App.Example.Com:11434"));
  EXPECT_TRUE(p.Allows("build.corp.example:11434"));
  EXPECT_TRUE(p.Allows("myhost.lan:11434"));
  // "*" (every origin), app://* and file://* name no host: they do not open the Host check.
  EXPECT_FALSE(p.Allows("attacker.example"));
  EXPECT_FALSE(p.Allows("example.com"));
  EXPECT_FALSE(p.Allows("corp.example"));
}

}  // namespace
}  // namespace resident::api
