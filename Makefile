# The README's commands. Each installs what is missing, configures, builds on both cores, runs.
BUILD ?= build
JOBS  ?= $(shell nproc)

.PHONY: demo vit cnn bible bible-torch lm-torch test bench vit-time bench-distributed build deps clean fixtures

demo: build              ## the main job: train the translation model (numbers, English -> French), score it, translate, analyse its heads
	rm -rf runs/numbers-demo
	$(BUILD)/rune train examples/translation/numbers.toml --set run.name=numbers-demo
	$(BUILD)/rune eval runs/numbers-demo/checkpoints/best.h5 --split test
	$(BUILD)/rune translate runs/numbers-demo/checkpoints/best.h5 "seventy-one" "two hundred and thirty-four" \
	  "eighty thousand" "one thousand, two hundred" "nine hundred and ninety-nine thousand, nine hundred and ninety-nine"
	$(BUILD)/rune attention runs/numbers-demo/checkpoints/best.h5 \
	  "two hundred and thirty-four thousand, five hundred and seventy-one" --out runs/numbers-demo
	$(BUILD)/rune heads runs/numbers-demo/checkpoints/best.h5 --prune --no-progress
	@echo "run folder: runs/numbers-demo (config.toml, metrics.jsonl, curves.png, multi_head_attention_map.png, heads-test/heads.md, checkpoints/)"

vit: build               ## the ViT on Fashion-MNIST: train (about 30 min), test accuracy, confusion matrix, attention over images, head analysis (5 min)
	rm -rf runs/fashion_mnist
	$(BUILD)/rune train examples/vit/fashion_mnist.toml
	$(BUILD)/rune eval runs/fashion_mnist/checkpoints/best.h5 --predictions runs/fashion_mnist/predictions.csv
	$(BUILD)/rune attention runs/fashion_mnist/checkpoints/best.h5 --image 0 --out runs/fashion_mnist
	$(BUILD)/rune heads runs/fashion_mnist/checkpoints/best.h5 --prune
	@echo "run folder: runs/fashion_mnist (curves.png, confusion-test.png, vit_attention_map.png, attention_rollout.png, heads-test/heads.md, checkpoints/)"

cnn: build               ## the ViT's baseline, a ResNet-20, on Fashion-MNIST: train, test accuracy, confusion matrix
	rm -rf runs/cnn_fashion_mnist
	$(BUILD)/rune train examples/cnn/fashion_mnist.toml --set run.name=cnn_fashion_mnist
	$(BUILD)/rune eval runs/cnn_fashion_mnist/checkpoints/best.h5 --predictions runs/cnn_fashion_mnist/predictions.csv
	@echo "run folder: runs/cnn_fashion_mnist (curves.png, confusion-test.png, predictions.csv, checkpoints/)"

bible: build             ## English to Spanish on the Bible (about 20 min of training, 2 cores): test BLEU and chrF, word alignment against Strong's numbers, head analysis
	rm -rf runs/en_es
	$(BUILD)/rune train examples/bible/en_es.toml
	$(BUILD)/rune eval runs/en_es/checkpoints/best.h5 --split test
	$(BUILD)/rune align runs/en_es/checkpoints/best.h5 --split test --no-progress
	$(BUILD)/rune translate runs/en_es/checkpoints/best.h5 "In the beginning, God created the heavens and the earth." \
	  "Peter and John went up into the temple at the hour of prayer."
	$(BUILD)/rune attention runs/en_es/checkpoints/best.h5 "Peter and John went up into the temple at the hour of prayer." --out runs/en_es
	$(BUILD)/rune heads runs/en_es/checkpoints/best.h5 --limit 300 --no-progress
	@echo "run folder: runs/en_es (curves.png, align-test/alignment.md and .png, heads-test/heads.md, checkpoints/)"

bible-torch: build       ## the PyTorch twin of runs/en_es: same model, data, tokens, steps and schedule (bench/torch_bible.py)
	scripts/install-deps.sh --bench
	/usr/bin/python3 bench/torch_bible.py runs/en_es/checkpoints/best.h5 --out runs/en_es-torch

lm-torch: build          ## the PyTorch twin of runs/web (same model, windows, steps, schedule; about 110 min), then step time and decoding side by side
	scripts/install-deps.sh --bench
	/usr/bin/python3 bench/torch_lm.py train runs/web/checkpoints/best.h5 --out runs/web-torch
	bash bench/lm_reference.sh runs/web/checkpoints/best.h5

test: build              ## the whole GoogleTest suite through ctest
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build             ## benchmarks against PyTorch, both at 2 threads
	scripts/install-deps.sh --bench
	bash bench/run.sh $(BUILD)/bench_ops
	bash bench/run.sh $(BUILD)/bench_attention
	bash bench/run.sh $(BUILD)/bench_translation
	bash bench/run.sh $(BUILD)/bench_vit
	bash bench/run.sh $(BUILD)/bench_cnn

vit-time: build          ## time to 91% test accuracy: the Fashion-MNIST ViT recipe, then its PyTorch twin (about 75 min)
	scripts/install-deps.sh --bench
	/usr/bin/python3 bench/vit_time_to_accuracy.py

bench-distributed: build ## data-parallel steps: 2 ranks x 1 thread against 1 rank x 2 threads (docs/distributed.md)
	bash bench/distributed.sh $(BUILD)/bench_distributed

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
