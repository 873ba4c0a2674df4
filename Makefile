# resident: one-command set-up, build, run and test on Debian 12.
#   make run    install what is missing, build, create the demo model, serve on 127.0.0.1:11434
#   make test   the same set-up, then every test
#   make bench  the cold-start / warm / decode benchmark against llama.cpp anchors
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

.PHONY: setup configure build run test bench demo clean

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

clean:
	rm -rf $(BUILD_DIR)
