#!/usr/bin/env bash
# The install test (ctest label `install`): installs the current build tree into a temporary
# prefix, configures and builds examples/consumer against that prefix alone, runs it, and
# checks that the package it found is the one just installed.
# Usage: install_consumer.sh BUILD_DIR CONSUMER_SRC_DIR [extra cmake args for the consumer...]
set -euo pipefail
build_dir=$1
consumer_src=$2
shift 2

work=$(mktemp -d "${TMPDIR:-/tmp}/swiftbalancer-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build_dir" --prefix "$prefix" > "$work/install.log"
for f in bin/swiftbalancer include/swiftbalancer/runtime/balancer.h \
         lib/cmake/SwiftBalancer/SwiftBalancerConfig.cmake \
         lib/cmake/SwiftBalancer/SwiftBalancerConfigVersion.cmake; do
  [[ -e $prefix/$f ]] || { echo "install test: $f missing under the prefix"; exit 1; }
done

# The public surface only, and closed: no internal header is installed, and every header an
# installed header includes is installed too (an engine can include any of them).
if [[ -n $(find "$prefix/include/swiftbalancer" -path '*/internal*' -print -quit) ]]; then
  echo "install test: an internal header was installed:"
  find "$prefix/include/swiftbalancer" -path '*/internal*'
  exit 1
fi
while IFS= read -r line; do
  header=${line%%:*}
  inc=$(sed -n 's/^#include "\(swiftbalancer\/[^"]*\)".*/\1/p' <<< "${line#*:}")
  [[ -e $prefix/include/$inc ]] ||
    { echo "install test: $header includes $inc, which is not installed"; exit 1; }
done < <(grep -r '^#include "swiftbalancer/' "$prefix/include/swiftbalancer" || true)

# CMAKE_PREFIX_PATH is the prefix alone; the package registry is ignored so that nothing but
# the prefix can provide SwiftBalancer.
cmake -S "$consumer_src" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "$@" > "$work/configure.log" ||
  { cat "$work/configure.log"; exit 1; }
found=$(sed -n 's/^SwiftBalancer_DIR:PATH=//p' "$work/consumer/CMakeCache.txt")
if [[ $found != "$prefix"/* ]]; then
  echo "install test: SwiftBalancer found at '$found', not under $prefix"
  exit 1
fi
cmake --build "$work/consumer" -j 2 > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/consumer/consumer"
