# The README's commands. Each installs what is missing, configures, builds on both cores, runs.
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: demo test bench build deps clean fixtures

demo: build              ## the main job: train the reverse task through rune, then score it on its test split
	rm -rf runs/reverse-demo
	$(BUILD)/rune train examples/seq2seq/reverse.toml --set run.name=reverse-demo
	$(BUILD)/rune eval runs/reverse-demo/checkpoints/best.h5 --split test
	@echo "run folder: runs/reverse-demo (config.toml, metrics.jsonl, curves.png, checkpoints/)"

test: build              ## the whole GoogleTest suite through ctest
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build             ## benchmarks against PyTorch, both at 2 threads
	scripts/install-deps.sh --bench
	bash bench/run.sh $(BUILD)/bench_ops
	bash bench/run.sh $(BUILD)/bench_attention

fixtures:                ## rebuild tests/parity/fixtures from PyTorch (needs python3-torch, python3-h5py)
	scripts/install-deps.sh --bench
	/usr/bin/python3 tests/parity/make_fixtures.py

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

deps:
	scripts/install-deps.sh

clean:
	rm -rf $(BUILD)
