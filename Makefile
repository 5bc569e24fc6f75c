.PHONY: setup demo test bench lint format
setup:
	bash scripts/setup.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
bench:
	bash scripts/bench.sh
lint:
	.venv/bin/ruff format --check . && .venv/bin/ruff check .
format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
