// The HAProxy configuration of `resident cluster haproxy`: routing by model with consistent
// hashing and bounded load, round-robin on request, and addresses checked before they reach it.
// (The configuration is run for real by tests/clients/cluster.test.mjs.)
#include "cluster/haproxy_config.h"

#include <gtest/gtest.h>

namespace resident::cluster {
namespace {

HaproxyOptions Three() {
  HaproxyOptions o;
  o.listen = "127.0.0.1:8080";
  o.nodes = {"10.0.0.1:11434", "node-b.lan:11434", "[fd00::3]:11434"};
  return o;
}

TEST(HaproxyConfigTest, RoutesByTheNormalizedModelWithConsistentHashing) {
  auto config = HaproxyConfig(Three());
  ASSERT_TRUE(config.ok()) << config.status().message();
  for (const char* line : {"bind 127.0.0.1:8080", "option http-buffer-request", "json_query('$.model')",
                           "json_query('$.name')", "balance hash var(txn.model)", "hash-type consistent",
                           "hash-balance-factor 150", "server node1 10.0.0.1:11434", "server node2 node-b.lan:11434",
                           "server node3 [fd00::3]:11434", "http-check send meth GET uri / ver HTTP/1.1",
                           "default-server check inter 1000ms", "timeout check 5s", "concat(':latest')", "tune.bufsize 294912",
                           "balance leastconn"}) {
    EXPECT_NE(config->find(line), std::string::npos) << line << " in\n" << *config;
  }
}

TEST(HaproxyConfigTest, RoundRobinHasNoAffinity) {
  HaproxyOptions o = Three();
  o.round_robin = true;
  auto config = HaproxyConfig(o);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->find("balance hash"), std::string::npos);
  EXPECT_NE(config->find("balance roundrobin"), std::string::npos);
}

TEST(HaproxyConfigTest, BadAddressesAndSettingsAreErrors) {
  for (const char* node : {"10.0.0.1", "host:0", "host:70000", "ho st:1", "host;rm:1", "[fd00::1:1", ":11434"}) {
    HaproxyOptions o = Three();
    o.nodes.push_back(node);
    auto config = HaproxyConfig(o);
    ASSERT_FALSE(config.ok()) << node;
    EXPECT_NE(config.status().message().find("--node"), std::string::npos) << config.status().message();
  }
  HaproxyOptions twice = Three();
  twice.nodes.push_back(twice.nodes[0]);
  EXPECT_NE(HaproxyConfig(twice).status().message().find("given twice"), std::string::npos);
  HaproxyOptions none = Three();
  none.nodes.clear();
  EXPECT_FALSE(HaproxyConfig(none).ok());
  HaproxyOptions factor = Three();
  factor.balance_factor = 50;
  EXPECT_FALSE(HaproxyConfig(factor).ok());
  HaproxyOptions listen = Three();
  listen.listen = "0.0.0.0";
  EXPECT_NE(HaproxyConfig(listen).status().message().find("--listen"), std::string::npos);
}

}  // namespace
}  // namespace resident::cluster
