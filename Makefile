# resident: one-command set-up, build, run and test on Debian 12.
#   make run    install what is missing, build, create the demo model, serve on 127.0.0.1:11434
#   make test   the same set-up, then every test
#   make bench  the cold-start / warm / decode benchmark against llama.cpp anchors
#   make fuzz            libFuzzer on every parser of outside input (clang-14)
#   make check-sanitize  every test under ASan+UBSan, then under TSan (clang-14)
SHELL := /bin/bash
.DEFAULT_GOAL := build

BUILD_DIR ?= build
JOBS ?= $(shell nproc)
LLAMA_DIR := $(shell scripts/setup.sh --print-llama-dir)
RESIDENT := $(BUILD_DIR)/bin/resident
# The demo model lives in resident's store (Ollama's format). Its weights are synthesized into
# the cache first, then imported with `resident create --local` (a hard link: no second copy).
MODELS_DIR ?= $(or $(RESIDENT_MODELS),$(HOME)/.resident/models)
DEMO_GGUF := $(HOME)/.cache/resident/demo-20M-seed1.gguf
DEMO_MODELFILE := $(BUILD_DIR)/demo.Modelfile
DEMO_MANIFEST := $(MODELS_DIR)/manifests/registry.ollama.ai/library/demo/latest

.PHONY: setup configure build run test bench demo clean fuzz check-sanitize check-asan check-tsan

setup:
	@scripts/setup.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt cmake/llama.cmake | setup
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESIDENT_LLAMA_DIR=$(LLAMA_DIR)

configure: $(BUILD_DIR)/build.ninja

build: setup configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The demo model: a 20M-parameter random-weight llama on the llama SPM tokenizer (40 MB).
$(DEMO_GGUF): | build
	@mkdir -p $(dir $@)
	$(RESIDENT) synth $@ --params 20M --seed 1

$(DEMO_MANIFEST): $(DEMO_GGUF) | build
	@printf 'FROM %s\n' "$(DEMO_GGUF)" > $(DEMO_MODELFILE)
	RESIDENT_MODELS=$(MODELS_DIR) $(RESIDENT) create demo -f $(DEMO_MODELFILE) --local

demo: build $(DEMO_MANIFEST)

run: demo
	@echo
	@echo "resident is starting on http://$${RESIDENT_HOST:-127.0.0.1:11434}. In another terminal:"
	@echo "  $(RESIDENT) run demo \"hi\""
	@echo "  curl http://127.0.0.1:11434/api/generate -d '{\"model\":\"demo\",\"prompt\":\"hi\",\"stream\":false}'"
	@echo "  curl http://127.0.0.1:11434/api/ps"
	@echo "Stop it with Ctrl-C."
	@echo
	RESIDENT_MODELS=$(MODELS_DIR) exec $(RESIDENT) serve

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 --timeout 900

bench: build
	scripts/build-llama-tools.sh
	bench/cold_start

# --- fuzzing and sanitizers (clang-14 and its compiler-rt: libFuzzer, ASan, UBSan, TSan) -----------
#   make fuzz             build fuzz/*_fuzzer.cc and run each for FUZZ_SECONDS (default 60); fails on
#                         any crash, leak, UB or broken invariant. FUZZERS="gguf requests" runs a few.
#   make check-sanitize   the unit and integration tests under ASan+UBSan (build-asan), then under
#                         TSan (build-tsan); fails on any sanitizer report, in any process.
SAN_CC ?= clang-14
SAN_CXX ?= clang++-14
# Debug: assertions on (the sanitizer builds add -O1 and line tables themselves, CMakeLists.txt).
SAN_CONFIGURE = CC=$(SAN_CC) CXX=$(SAN_CXX) cmake -S . -G Ninja -DRESIDENT_LLAMA_DIR=$(LLAMA_DIR)
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZERS ?=
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan

$(FUZZ_DIR)/build.ninja: CMakeLists.txt cmake/llama.cmake fuzz/CMakeLists.txt | setup
	$(SAN_CONFIGURE) -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESIDENT_FUZZ=ON

fuzz: setup $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_DIR) $(FUZZERS)

$(ASAN_DIR)/build.ninja: CMakeLists.txt cmake/llama.cmake | setup
	$(SAN_CONFIGURE) -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DRESIDENT_SANITIZE=address

$(TSAN_DIR)/build.ninja: CMakeLists.txt cmake/llama.cmake | setup
	$(SAN_CONFIGURE) -B $(TSAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DRESIDENT_SANITIZE=thread

check-asan: setup $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)
	scripts/check-sanitize.sh $(ASAN_DIR) address

check-tsan: setup $(TSAN_DIR)/build.ninja
	cmake --build $(TSAN_DIR) -j $(JOBS)
	scripts/check-sanitize.sh $(TSAN_DIR) thread

check-sanitize: check-asan check-tsan

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR) $(ASAN_DIR) $(TSAN_DIR)
