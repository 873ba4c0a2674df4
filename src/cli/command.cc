#include "cli/command.h"

#include <cstdio>
#include <cstdlib>

namespace resident::cli {

int Fail(const Status& status) {
  std::fprintf(stderr, "Error: %s\n", status.message().c_str());
  return 1;
}

std::string HomeDir() {
  const char* h = std::getenv("HOME");
  return h && *h ? h : "/tmp";
}

}  // namespace resident::cli
