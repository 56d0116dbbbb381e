# Two commands: `make demo` and `make test`. Both create .venv on first use.
# make demo ends with the main job: xnnfit optimize writes the fastest faithful model to .demo/.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EXAMPLES := examples/sin_cos_lambda.py:build examples/where_activation.py:build \
            examples/dynamic_reshape.py:build examples/where_cnn.py:build \
            examples/transformer_block.py:build examples/upsampling_decoder.py:build

.PHONY: demo test install install-test clean kb-versions

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(VENV)/bin/xnnfit check $(EXAMPLES) --details
	$(VENV)/bin/xnnfit check examples/dynamic_reshape.py:build --dynamic-batch
	mkdir -p .demo
	$(VENV)/bin/xnnfit optimize examples/digits_where.py:build -o .demo/digits_best.tflite --force \
		--calibration examples/data/digits.calibration.npz --eval examples/data/digits.eval.npz

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

# Re-derive kb/versions.json: every KB probe on each runtime of the --runtime matrix (venvs cached under the user cache).
kb-versions: $(VENV)/.installed
	$(PY) -m xnnfit.probe_matrix --write

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .demo
