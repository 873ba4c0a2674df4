#include "store/gguf_checks.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace resident::store {
namespace {

// A number as a message shows it: integers whole, others in %g form, "nan", "inf".
std::string Shown(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == std::floor(v) && std::fabs(v) < 1e18) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{:g}", v);
}

// A string value as a message shows it: quoted, control bytes as \xHH, at most 64 bytes.
std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s.substr(0, 64)) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') out += fmt::format("\\x{:02x}", c);
    else out += ch;
  }
  return out + (s.size() > 64 ? "...\"" : "\"");
}

Status Bad(const std::string& key, const std::string& value, const std::string& rule) {
  return Status::InvalidArgument(key + " is " + value + ": " + rule);
}

// Reads keys of one GGUF's metadata.
class Keys {
 public:
  explicit Keys(const GgufInfo& info) : info_(info) {}

  std::optional<double> Number(const std::string& key) const {
    auto it = info_.numbers.find(key);
    return it == info_.numbers.end() ? std::nullopt : std::optional<double>(it->second);
  }
  std::optional<std::string> Text(const std::string& key) const {
    auto it = info_.kv.find(key);
    return it == info_.kv.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  // A key that holds one value or one value per layer: its values (empty when absent).
  std::vector<double> PerLayer(const std::string& key) const {
    if (auto v = Number(key)) return {*v};
    auto it = info_.number_arrays.find(key);
    return it == info_.number_arrays.end() ? std::vector<double>{} : it->second;
  }
  bool Has(const std::string& key) const { return info_.kv.count(key) > 0; }

 private:
  const GgufInfo& info_;
};

// Each value of a one-or-per-layer key within [min, max]; `rule` says what the range is.
Status CheckEach(const std::string& key, const std::vector<double>& values, double min, double max,
                 const std::string& rule) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < min || values[i] > max) {
      std::string value = Shown(values[i]) + (values.size() > 1 ? fmt::format(" (layer {})", i) : "");
      return Bad(key, value, rule);
    }
  }
  return Status::Ok();
}

Status CheckFloats(const GgufInfo& info, const std::string& a) {
  for (const auto& [key, v] : info.numbers) {
    if (!key.starts_with(a + ".")) continue;
    const bool finite = std::isfinite(v);
    if (key.ends_with("epsilon") && !(finite && v > 0)) {
      return Bad(key, Shown(v), "an epsilon must be a finite number above 0");
    }
    if ((key == a + ".rope.freq_base" || key == a + ".rope.freq_base_swa") && !(finite && v >= 1)) {
      return Bad(key, Shown(v),
                 "a rope base must be a finite number of at least 1 (below 1 the rotation frequencies grow "
                 "without bound and every output is NaN)");
    }
    if (key == a + ".rope.scaling.factor" && !(finite && v >= 0)) {
      return Bad(key, Shown(v), "a rope scaling factor must be a finite number of at least 0 (0: none)");
    }
    if (!finite) return Bad(key, Shown(v), "a hyperparameter must be a finite number");
  }
  return Status::Ok();
}

Status CheckShape(const GgufInfo& info, const Keys& keys, const std::string& a) {
  const std::string block_key = a + ".block_count";
  auto blocks = keys.Number(block_key);
  if (!blocks) {
    return Status::InvalidArgument(block_key + " is missing or not a number: a model must say how many blocks it has");
  }
  // A count the tensors contradict says the file is corrupt (2^31 blocks on a 40 MB file was
  // predicted to need 4504 TB); without blk.N tensors (other naming) only the range is known.
  if (info.n_blocks_present != 0 && *blocks != static_cast<double>(info.n_blocks_present)) {
    return Bad(block_key, Shown(*blocks),
               fmt::format("the file holds tensors for {} blocks (blk.0 to blk.{}): it is corrupt",
                           info.n_blocks_present, info.n_blocks_present - 1));
  }
  if (*blocks < 1 || *blocks > static_cast<double>(kMaxBlockCount)) {
    return Bad(block_key, Shown(*blocks), fmt::format("a model has 1 to {} blocks", kMaxBlockCount));
  }
  if (auto nextn = keys.Number(a + ".nextn_predict_layers"); nextn && !(*nextn >= 0 && *nextn <= *blocks)) {
    return Bad(a + ".nextn_predict_layers", Shown(*nextn), "it must be at most " + block_key);
  }

  const std::string embd_key = a + ".embedding_length";
  auto n_embd = keys.Number(embd_key);
  if (n_embd && (*n_embd < 1 || *n_embd > static_cast<double>(kMaxEmbeddingLength))) {
    return Bad(embd_key, Shown(*n_embd), fmt::format("an embedding length is 1 to {}", kMaxEmbeddingLength));
  }
  if (auto ctx = keys.Number(a + ".context_length"); ctx && *ctx < 1) {
    return Bad(a + ".context_length", Shown(*ctx), "a training context is at least 1 token");
  }
  RESIDENT_RETURN_IF_ERROR(CheckEach(a + ".feed_forward_length", keys.PerLayer(a + ".feed_forward_length"), 0,
                                     static_cast<double>(kMaxFeedForwardLength),
                                     fmt::format("a feed-forward length is at most {}", kMaxFeedForwardLength)));

  // Attention heads, one value for every layer or one per layer.
  const std::string head_key = a + ".attention.head_count", kv_key = a + ".attention.head_count_kv";
  const std::vector<double> heads = keys.PerLayer(head_key);
  RESIDENT_RETURN_IF_ERROR(CheckEach(head_key, heads, 0, static_cast<double>(kMaxHeadCount),
                                     fmt::format("a head count is at most {}", kMaxHeadCount)));
  const std::vector<double> kv_heads = keys.PerLayer(kv_key);  // absent: as many as head_count
  const size_t layers = std::max(heads.size(), kv_heads.size());
  auto at = [](const std::vector<double>& v, size_t i) { return v.size() == 1 ? v[0] : i < v.size() ? v[i] : 0; };
  for (size_t i = 0; i < layers && !heads.empty() && !kv_heads.empty(); ++i) {
    const double h = at(heads, i), kv = at(kv_heads, i);
    // A layer without attention (0 heads), or whose K/V heads are 0 (a recurrent or convolution
    // layer of a hybrid model; in an attention layer llama.cpp refuses the tensors' shapes).
    if (h == 0 || kv == 0) continue;
    const std::string value = Shown(kv) + (kv_heads.size() > 1 ? fmt::format(" (layer {})", i) : "");
    if (kv < 0 || kv > h) {
      return Bad(kv_key, value, "a layer has at most " + head_key + " (" + Shown(h) + ") K/V heads");
    }
    if (std::fmod(h, kv) != 0) return Bad(kv_key, value, head_key + " (" + Shown(h) + ") must be a multiple of it");
  }
  if (heads.size() == 1 && heads[0] > 0 && n_embd && !keys.Has(a + ".attention.key_length") &&
      std::fmod(*n_embd, heads[0]) != 0) {
    return Bad(head_key, Shown(heads[0]),
               embd_key + " (" + Shown(*n_embd) + ") must be a multiple of it (heads of equal width)");
  }

  // Mixture of experts.
  const std::string experts_key = a + ".expert_count", used_key = a + ".expert_used_count";
  const double experts = keys.Number(experts_key).value_or(0);
  if (experts < 0 || experts > static_cast<double>(kMaxExpertCount)) {
    return Bad(experts_key, Shown(experts), fmt::format("a model has at most {} experts", kMaxExpertCount));
  }
  for (double used : keys.PerLayer(used_key)) {
    if (used < 0 || used > experts) {
      return Bad(used_key, Shown(used), "it must be at most " + experts_key + " (" + Shown(experts) + ")");
    }
    if (experts > 0 && used == 0) return Bad(used_key, Shown(used), "a model with experts uses at least one");
  }
  if (experts > 0 && keys.PerLayer(used_key).empty()) {
    return Status::InvalidArgument(used_key + " is missing: a model with experts must say how many it uses");
  }
  return Status::Ok();
}

Status CheckRopeScalingType(const Keys& keys, const std::string& a) {
  const std::string key = a + ".rope.scaling.type";
  auto type = keys.Text(key);
  if (!type) return Status::Ok();
  for (std::string_view known : {"none", "linear", "yarn", "longrope"}) {
    if (*type == known) return Status::Ok();
  }
  return Bad(key, Quoted(*type), "the rope scaling types are none, linear, yarn and longrope");
}

Status CheckTokenizer(const GgufInfo& info, const Keys& keys) {
  const std::string key = "tokenizer.ggml.model";
  auto model = keys.Text(key);
  if (!model) return Status::Ok();  // llama.cpp refuses a model without one, cleanly
  if (std::find(kKnownTokenizerModels.begin(), kKnownTokenizerModels.end(), *model) == kKnownTokenizerModels.end()) {
    std::string known;
    for (std::string_view k : kKnownTokenizerModels) known += (known.empty() ? "" : ", ") + std::string(k);
    return Bad(key, Quoted(*model), "not a tokenizer llama.cpp knows (" + known + ")");
  }
  if (*model == "bert" && info.n_byte_tokens > 0) {
    return Bad(key, Quoted(*model),
               fmt::format("a WordPiece (\"bert\") vocabulary has no byte tokens, and this one has {} "
                           "(tokenizer.ggml.token_type 6): the file is corrupt",
                           info.n_byte_tokens));
  }
  return Status::Ok();
}

}  // namespace

Status CheckGgufHyperparameters(const GgufInfo& info) {
  if (info.architecture.empty()) {
    return Status::InvalidArgument("general.architecture is missing: the file does not say what model it is");
  }
  const Keys keys(info);
  const std::string& a = info.architecture;
  RESIDENT_RETURN_IF_ERROR(CheckFloats(info, a));
  RESIDENT_RETURN_IF_ERROR(CheckRopeScalingType(keys, a));
  RESIDENT_RETURN_IF_ERROR(CheckShape(info, keys, a));
  return CheckTokenizer(info, keys);
}

}  // namespace resident::store
