# Set-up is keyed on the content of requirements.txt: a second `make setup` with nothing changed
# does nothing (the stamp file's name carries the requirements' hash).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
DAVIS_INTERACTIVE := davisinteractive==1.0.4
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt | sha1sum | cut -c1-12)
# pip's warnings about extra index folders that a machine's pip.conf names but does not have
QUIET  := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }

.PHONY: setup test demo lint clean-venv app browser

setup: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# davisinteractive's sdist imports numpy and Cython in setup.py: they go first.
	$(PY) -m pip install --quiet $$(grep -E '^(numpy|Cython)==' requirements.txt) $(QUIET)
	$(PY) -m pip install --quiet -r requirements.txt $(QUIET)
	# Its setup.py pins scikit-learn==0.20.3 (no wheel for 3.11): install without its
	# declared dependencies; the real ones are pinned in requirements.txt.
	$(PY) -m pip install --quiet --no-build-isolation --no-deps $(DAVIS_INTERACTIVE) $(QUIET)
	rm -f $(VENV)/.installed-*
	touch $@

test: setup browser
	$(PY) -m pytest -q

# The web page's browser test drives Debian's Chromium (never a browser download): installed here when
# missing and root + apt are available; elsewhere tests/test_app_browser.py skips with the command.
browser:
	@test -x /usr/bin/chromium || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	  || echo "could not install chromium: the browser test will skip"; \
	else echo "no /usr/bin/chromium (install: apt-get update && apt-get install -y chromium): the browser test will skip"; fi; }

app: setup
	$(PY) app.py

demo: setup
	$(PY) demo.py

lint: setup
	$(PY) -m ruff check .

clean-venv:
	rm -rf $(VENV)
