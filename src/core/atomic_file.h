// Files the server writes for itself (the learner's state, later the prompt cache and the request
// log): written whole or not at all, so a crash or a full disk never leaves half a file.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace resident {

// Writes `contents` to a temporary file beside `path`, syncs it, renames it over `path` and syncs
// the folder. Errors: kInternal naming the step and the system's reason (the old file, if any,
// is left as it was and the temporary file removed).
Status WriteFileAtomically(const std::string& path, std::string_view contents);

// The whole file. Errors: kNotFound when it does not exist, kInternal when it cannot be read,
// kInvalidArgument when it is larger than `max_bytes`.
Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

}  // namespace resident
