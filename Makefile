# aiocri developer commands. `make test` is the README's test command.
PY ?= .venv/bin/python
PROTO_SRC := proto/runtime/v1/api.proto

.PHONY: setup system-deps proto cli test soak lint docs demo bench clean

setup: .venv/.installed

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,cli]'
	touch $@

# Regenerate aiocri/_proto from proto/ (messages + mypy stubs).
proto: setup
	PATH="$(CURDIR)/.venv/bin:$$PATH" $(PY) proto/generate.py

# Regenerate the command's table of flags (aiocri/_cli/_commands.py) from its signatures.
cli: setup
	$(PY) -m aiocri._cli.spec

lint: setup
	$(PY) -m ruff check aiocri tests benchmarks examples docs/_ext
	$(PY) -m mypy --strict aiocri examples/node_agent/agent.py docs/_ext
	$(PY) -m aiocri._cli.spec --check

# The API reference from the docstrings, built strictly (a warning fails it), then checked
# against every public name (tests/test_docs.py on the built site: a name without an entry fails).
docs: setup
	$(PY) -m mkdocs build --strict --site-dir site
	AIOCRI_SITE_DIR=site $(PY) -m pytest -q -p no:cacheprovider tests/test_docs.py

# The containerd tests need Debian packages: installed here when run as root.
system-deps:
	@sh .ci/system-deps

test: setup system-deps
	$(PY) -m pytest -q

# The long profile of the stateful fault test (several minutes), and the leak soak.
soak: setup
	AIOCRI_SOAK=1 $(PY) -m pytest -q tests/test_faults_stateful.py
	$(PY) -m benchmarks.soak $(SOAK_ARGS)

demo: setup
	.venv/bin/aiocri demo $(DEMO_ARGS)

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache build *.egg-info
