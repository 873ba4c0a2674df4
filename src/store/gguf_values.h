// A GGUF file's metadata values and tensors in full, as /api/show writes them in `model_info`
// and `tensors` (Ollama's shapes). Apart from gguf_metadata.h, whose cached summary every request
// reads: this reads the whole header again, arrays included (a vocabulary is 32k-256k strings),
// for the one route that shows it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace resident::store {

struct GgufValue {
  enum class Kind { kInt, kUint, kFloat, kBool, kString, kArray };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<GgufValue> items;  // kArray: its elements, when read
  uint64_t size = 0;             // kArray: its length (items is empty when it was not read)
};

struct GgufTensorShape {
  std::string name;
  std::string type;            // "F16", "Q8_0"... (ggml's type name in capitals, as Ollama writes it)
  std::vector<uint64_t> shape;  // innermost first, as many dimensions as the tensor has
};

struct GgufValues {
  std::vector<std::pair<std::string, GgufValue>> kv;  // in the file's order
  std::vector<GgufTensorShape> tensors;
};

// What /api/show's verbose reads of a file's arrays in all: a 256k-token vocabulary's tokens,
// scores, types and merges are about a million. A file whose arrays hold more (a hostile one: a
// GGUF header may declare an array of a billion bytes, 100 GB as values) has the arrays past the
// bound shown as null.
inline constexpr uint64_t kMaxShownArrayItems = 4'000'000;

// Every key and tensor of the file. The elements of an array of more than `max_array_items`
// are not read (Ollama's /api/show reads none without verbose, 0; every one with verbose, -1),
// nor those of an array that would take the elements read past `max_total_items`. Errors: those
// of ReadGgufInfo (kNotFound, kInvalidArgument naming the file).
Result<GgufValues> ReadGgufValues(const std::string& path, int64_t max_array_items,
                                  uint64_t max_total_items = kMaxShownArrayItems);

}  // namespace resident::store
