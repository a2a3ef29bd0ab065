#!/bin/sh
# Builds run_export (tools/c_loader/run_export.c) against the TensorFlow C API
# that the `tensorflow` pip wheel ships: the headers in tensorflow/include and
# libtensorflow_cc.so.2 / libtensorflow_framework.so.2 beside them.
#
#   tools/c_loader/build.sh [OUTPUT]      # default: tools/c_loader/run_export
#
# PYTHON (default: python3) is the Python whose tensorflow package to build
# against (found without importing it); CC (default: cc) the C compiler. The
# binary finds the libraries through its rpath: it runs without Python and
# without LD_LIBRARY_PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
output=${1:-$here/run_export}
python=${PYTHON:-python3}
# tf.sysconfig.get_lib() and get_include() are this directory and its include/.
lib=$("$python" -c 'import importlib.util as u; s = u.find_spec("tensorflow"); print(s.submodule_search_locations[0])')
include=$lib/include
exec "${CC:-cc}" -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -I"$include" "$here/run_export.c" -o "$output" \
  -L"$lib" -l:libtensorflow_cc.so.2 -l:libtensorflow_framework.so.2 -lm -Wl,-rpath,"$lib"
