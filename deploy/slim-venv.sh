#!/bin/sh
# Removes from the image's venv what running never uses: TensorFlow's C++ headers (for
# compiling custom ops, about 290 MB), libclang (used by TensorFlow's build tooling, not
# at run time, about 60 MB) and the installers. Run as the last step of a build stage.
set -eu
site="$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
rm -rf "$site/tensorflow/include"
python -m pip uninstall --yes --quiet libclang setuptools wheel pip
