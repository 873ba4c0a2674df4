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
DEMO_DIR ?= $(HOME)/.resident/gguf
DEMO_MODEL := $(DEMO_DIR)/demo.gguf

.PHONY: setup configure build run test bench demo clean

setup:
	@scripts/setup.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt cmake/llama.cmake | setup
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESIDENT_LLAMA_DIR=$(LLAMA_DIR)

configure: $(BUILD_DIR)/build.ninja

build: setup configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The demo model: a 20M-parameter random-weight llama on the llama SPM tokenizer (40 MB).
$(DEMO_MODEL): | build
	@mkdir -p $(DEMO_DIR)
	$(RESIDENT) synth $@ --params 20M --seed 1

demo: build $(DEMO_MODEL)

run: demo
	@echo
	@echo "resident is starting on http://$${RESIDENT_HOST:-127.0.0.1:11434}. In another terminal:"
	@echo "  $(RESIDENT) run demo \"hi\""
	@echo "  curl http://127.0.0.1:11434/api/generate -d '{\"model\":\"demo\",\"prompt\":\"hi\",\"stream\":false}'"
	@echo "  curl http://127.0.0.1:11434/api/ps"
	@echo "Stop it with Ctrl-C."
	@echo
	exec $(RESIDENT) serve --models-dir $(DEMO_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 --timeout 900

bench: build
	scripts/build-llama-tools.sh
	bench/cold_start

clean:
	rm -rf $(BUILD_DIR)
