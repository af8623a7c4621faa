#!/usr/bin/env bash
# Prepare what a GPU-machine session carries (run here, on the developer machine, from the repo root):
#   .carry/data/{mnist,fashion-mnist}  the genuine IDX files (ignored by git; never committed)
#   .whl/                              the Jupyter packages the GPU machine lacks, as Python 3.12 wheels,
#                                      at the versions pinned in requirements.txt
# See scripts/gpu/README.md for the device commands that use them.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-../shared/data}
mkdir -p .carry/data
for set in mnist fashion-mnist; do
  mkdir -p ".carry/data/$set"
  cp "$DATA/$set/"*-ubyte.gz ".carry/data/$set/"
done
# The kernel and notebook runner, and what they need beyond the GPU image's own packages.
PKGS="nbclient nbformat jupyter_client jupyter_core ipykernel ipython ipython_pygments_lexers traitlets pyzmq
tornado comm debugpy matplotlib-inline platformdirs fastjsonschema jsonschema jsonschema-specifications referencing
rpds-py nest-asyncio2 jedi parso pexpect ptyprocess prompt_toolkit wcwidth stack-data executing asttokens pure_eval
ipywidgets widgetsnbextension jupyterlab_widgets"
rm -rf .whl && mkdir -p .whl
for pkg in $PKGS; do
  pin=$(grep -i -E "^${pkg//[-_]/[-_]}==" requirements.txt || true)
  [ -n "$pin" ] || pin=$pkg
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$pin"
done
du -sh .carry .whl
