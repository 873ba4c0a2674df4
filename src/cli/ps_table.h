// `resident ps`: the models loaded now, printed as `ollama ps` prints them:
//
//   NAME           ID              SIZE     PROCESSOR    CONTEXT    UNTIL
//   tiny:latest    0f4c7e1d2a3b    70 MB    100% CPU     2048       4 minutes from now
//
// Columns left-aligned, four spaces apart. The pieces are Ollama's own formatting rules
// (format.HumanBytes, format.HumanTime, cmd.ListRunningHandler), so scripts that parse
// `ollama ps` read this too. When a model is asleep (sleep_after), a last column STATE says
// "sleeping" or "loaded" for each (SIZE is then what a sleeping model still holds); without a
// sleeping model the table is exactly Ollama's.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace resident::cli {

// Bytes in decimal units as Ollama shows them: "512 B", "1.5 KB", "70 MB", "1.2 GB" (one decimal
// below 10 and only when there is a fraction; whole numbers from 10 on).
std::string HumanBytes(uint64_t bytes);

// "Less than a second", "1 second", "42 seconds", "About a minute", "4 minutes", "About an
// hour", "5 hours", "3 days", "2 weeks", "3 months", "4 years", as Ollama rounds them (seconds
// and minutes down, hours to the nearest).
std::string HumanDuration(double seconds);

// The UNTIL column for a model that expires at `expires_s` (seconds since the epoch) seen at
// `now_s`: "Stopping..." once that time has passed (an unload is under way), "Forever" more than
// 20 years ahead (how the server reports keep_alive forever), else "<HumanDuration> from now".
std::string Until(double expires_s, double now_s);

// The PROCESSOR column: "100% CPU" with no bytes on a GPU (always so on this CPU-only server),
// "100% GPU", "48%/52% CPU/GPU", or "Unknown".
std::string Processor(uint64_t size, uint64_t size_vram);

// Seconds since the epoch of an RFC 3339 time ("2026-01-02T03:04:05.123456789Z", or with an
// offset "+01:00"). Errors: kInvalidArgument when it is not one.
Result<double> ParseRfc3339Seconds(const std::string& text);

// The whole table for an /api/ps answer, one line per model, each ending in a newline. Models
// that carry a "node" (`resident ps --node`: several nodes' answers merged) get a last column NODE.
// Errors: kInvalidArgument when `ps` is not an object with a "models" array.
Result<std::string> FormatPsTable(const nlohmann::json& ps, double now_s);

}  // namespace resident::cli
