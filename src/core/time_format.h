// Time as Ollama prints it.
#pragma once

#include <string>

#include "core/clock.h"

namespace resident {

// RFC 3339 in UTC with nanoseconds: "2024-05-01T12:00:00.123456789Z".
std::string FormatRfc3339(WallTime t);

}  // namespace resident
