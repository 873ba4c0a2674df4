// What the residency learner knows, saved so that it survives a restart: every model's usage
// history (learner.h) in one small text file next to the model store, written atomically
// (core/atomic_file.h). A file that is missing, unreadable, corrupt or of another version is not
// trusted: LoadLearnerState says why, the server logs it and starts from nothing.
//
// Format (version 1), one record a line, numbers in decimal:
//   resident-learner 1
//   model NAME REQUESTS BYTES LOAD_S IDLE_SINCE_S|-
//   gap END_S SECONDS PREV_S            (the model's gaps, oldest first, after its model line)
#pragma once

#include <map>
#include <string>

#include "core/status.h"
#include "sched/learner.h"

namespace resident::sched {

// The file's text for these histories.
std::string FormatLearnerState(const std::map<std::string, UsageHistory>& histories);
// Errors: kInvalidArgument "LINE: reason" for anything that is not exactly the format above
// (names of 1-300 printable characters without spaces, finite non-negative numbers, at most
// UsageHistory::kMaxGaps gaps a model, at most 100,000 models).
Result<std::map<std::string, UsageHistory>> ParseLearnerState(const std::string& text);

Status SaveLearnerState(const std::string& path, const std::map<std::string, UsageHistory>& histories);
// Errors: kNotFound (no file yet), kInternal (unreadable), kInvalidArgument (corrupt; the path named).
Result<std::map<std::string, UsageHistory>> LoadLearnerState(const std::string& path);

}  // namespace resident::sched
