// Writes the seed of the gguf fuzzer (fuzz/corpus/gguf/): a tiny llama-shaped GGUF with one
// key of every scalar type, string and number arrays, a chat template and three small tensors
// (F32, F16, Q8_0). About 2 KB. Usage: gguf_seed_writer OUT
#include <cstdio>
#include <cstring>
#include <vector>

#include <ggml.h>
#include <gguf.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT\n", argv[0]);
    return 2;
  }
  gguf_context* g = gguf_init_empty();
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_str(g, "general.name", "fuzz seed");
  gguf_set_val_u32(g, "general.file_type", 1);
  gguf_set_val_u32(g, "llama.context_length", 128);
  gguf_set_val_u32(g, "llama.embedding_length", 32);
  gguf_set_val_u32(g, "llama.block_count", 1);
  gguf_set_val_u32(g, "llama.feed_forward_length", 64);
  gguf_set_val_u32(g, "llama.attention.head_count", 2);
  gguf_set_val_i32(g, "llama.attention.head_count_kv", 1);
  gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  gguf_set_val_u8(g, "seed.u8", 8);
  gguf_set_val_i8(g, "seed.i8", -8);
  gguf_set_val_u16(g, "seed.u16", 16);
  gguf_set_val_i16(g, "seed.i16", -16);
  gguf_set_val_u64(g, "seed.u64", 64);
  gguf_set_val_i64(g, "seed.i64", -64);
  gguf_set_val_f64(g, "seed.f64", 0.5);
  gguf_set_val_bool(g, "seed.bool", true);
  gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
  const char* tokens[] = {"<unk>", "<s>", "</s>", "a", "b", "c"};
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", tokens, 6);
  const float scores[] = {0, 0, 0, -1, -2, -3};
  gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 6);
  const int32_t types[] = {2, 3, 3, 1, 1, 1};
  gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 6);
  gguf_set_val_str(g, "tokenizer.chat_template",
                   "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}");

  ggml_init_params params{/*mem_size=*/1 << 20, /*mem_buffer=*/nullptr, /*no_alloc=*/false};
  ggml_context* ctx = ggml_init(params);
  ggml_tensor* norm = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 32);
  ggml_set_name(norm, "output_norm.weight");
  ggml_tensor* embd = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, 32, 6);
  ggml_set_name(embd, "token_embd.weight");
  ggml_tensor* q = ggml_new_tensor_2d(ctx, GGML_TYPE_Q8_0, 32, 2);
  ggml_set_name(q, "blk.0.attn_q.weight");
  for (ggml_tensor* t : {norm, embd, q}) {
    std::memset(t->data, 0, ggml_nbytes(t));
    gguf_add_tensor(g, t);
  }
  const bool ok = gguf_write_to_file(g, argv[1], /*only_meta=*/false);
  gguf_free(g);
  ggml_free(ctx);
  return ok ? 0 : 1;
}
