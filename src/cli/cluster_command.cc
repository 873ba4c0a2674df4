// `resident cluster haproxy`: prints the HAProxy configuration that routes requests over several
// resident nodes by model (cluster/haproxy_config.h, docs/cluster.md).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cluster/haproxy_config.h"
#include "core/bytes.h"
#include "core/keep_alive.h"

namespace resident::cli {
namespace {

struct ClusterArgs {
  cluster::HaproxyOptions options;
  std::string check_interval = "1s";
  std::string max_body = "256KiB";
};

int Haproxy(ClusterArgs& a) {
  auto interval = ParseGoDuration(a.check_interval);
  if (!interval.ok()) return Fail(Status::InvalidArgument("--check-interval: " + interval.status().message()));
  a.options.check_interval_ms =
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(*interval).count());
  auto body = ParseBytes(a.max_body);
  if (!body.ok()) return Fail(Status::InvalidArgument("--max-body: " + body.status().message()));
  a.options.max_body = *body;
  auto config = cluster::HaproxyConfig(a.options);
  if (!config.ok()) return Fail(config.status());
  std::fputs(config->c_str(), stdout);
  return 0;
}

}  // namespace

void AddClusterCommands(CLI::App& app, CommandAction& chosen) {
  auto* cluster = app.add_subcommand("cluster", "Several resident nodes behind one address (docs/cluster.md)");
  cluster->require_subcommand(1);
  auto args = std::make_shared<ClusterArgs>();
  auto* h = cluster->add_subcommand(
      "haproxy", "Print an HAProxy configuration that sends each model's requests to one node (consistent hashing "
                 "with bounded load, health checks), and the other routes to any healthy node");
  h->add_option("--listen", args->options.listen, "HOST:PORT HAProxy listens on")->required();
  h->add_option("--node", args->options.nodes, "HOST:PORT of a resident node (repeat for each)")->required();
  h->add_flag("--round-robin", args->options.round_robin,
              "No model affinity: every request to the next node in turn (what a plain balancer does; to compare)");
  h->add_option("--check-interval", args->check_interval, "How often each node's health is checked (default 1s)");
  h->add_option("--balance-factor", args->options.balance_factor,
                "Bounded load: a node takes at most this % of the average requests in flight (default 150; 0: off)");
  h->add_option("--max-body", args->max_body,
                "The largest request body whose model is read (HAProxy's buffer; default 256KiB)");
  h->callback([&chosen, args] { chosen = [args] { return Haproxy(*args); }; });
}

}  // namespace resident::cli
