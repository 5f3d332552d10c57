# make demo: set up .venv and show zoo working offline.  make test: set up .venv and run the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := dev,docs,pandas,parquet,tensorboard,yolo,hf,timm,hub-yolov5,ray,onnx,serve,video,coco

.PHONY: demo test check docs bench catalog clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile  # one worker per core; a file's tests share a worker

check: $(STAMP)
	$(BIN)/ruff check zoo plugins tests examples bench scripts
	$(BIN)/ruff format --check zoo plugins
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

catalog: $(STAMP)
	$(BIN)/python scripts/gen_torchvision_catalog.py
	$(BIN)/python -m zoo_yolo._generate

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
