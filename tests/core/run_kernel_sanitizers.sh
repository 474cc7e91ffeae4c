#!/usr/bin/env bash
# Runs the fused CPU kernel's tests against a build checked by AddressSanitizer and
# UndefinedBehaviorSanitizer, and fails if either reports anything.
#
# Usage (from the repository root):
#     tests/core/run_kernel_sanitizers.sh [extra pytest arguments]
#
# What it does:
#   * builds the kernel with GLN_JAX_KERNEL_CXXFLAGS="-fsanitize=address,undefined
#     -fno-sanitize-recover=undefined -g -fno-omit-frame-pointer" into a cache folder of its
#     own (a fresh XDG_CACHE_HOME, removed afterwards), so the user's cached library is
#     neither used nor replaced;
#   * preloads the compiler's libasan and libubsan (Python itself is not instrumented), with
#     ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 (the interpreter's own allocations are not
#     leaks worth reporting; the first error stops the run) and UBSAN_OPTIONS that print a
#     stack trace;
#   * runs tests/core/test_kernel.py, test_kernel_inputs.py, test_kernel_cache.py and
#     test_kernel_fuzz.py (the public API fuzzed by Hypothesis, fixed seed) in one
#     pytest worker (-n 1; subprocesses the tests start inherit the same environment);
#   * greps the output for "ERROR: AddressSanitizer" and "runtime error:".
#
# Environment: CXX picks the compiler (default c++; it must be GCC or Clang with the
# sanitizer runtimes installed); KEEP_LOG=path keeps the full output there.
# Exit status: pytest's when it failed, else 1 when a sanitizer reported, else 0.
# Expect it to take several times longer than the plain run (about 10-20 minutes on 2 cores).
set -u -o pipefail

cd "$(dirname "$0")/../.."
compiler="${CXX:-c++}"
asan="$("$compiler" -print-file-name=libasan.so)"
ubsan="$("$compiler" -print-file-name=libubsan.so)"
for runtime in "$asan" "$ubsan"; do
    if [ ! -e "$runtime" ]; then
        echo "error: the sanitizer runtime $runtime is missing (install it for $compiler)" >&2
        exit 2
    fi
done

cache="$(mktemp -d)"
log="${KEEP_LOG:-$cache/pytest.log}"
trap 'rm -rf "$cache"' EXIT

start=$(date +%s)
env \
    XDG_CACHE_HOME="$cache" \
    GLN_JAX_KERNEL_CXXFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -g -fno-omit-frame-pointer" \
    LD_PRELOAD="$asan $ubsan" \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    python3 -m pytest -q -n 1 -p no:cacheprovider \
        tests/core/test_kernel.py tests/core/test_kernel_inputs.py \
        tests/core/test_kernel_cache.py tests/core/test_kernel_fuzz.py "$@" 2>&1 | tee "$log"
status=$?
echo "sanitizer run: pytest exit status $status after $(($(date +%s) - start)) s"

if grep -q -e "ERROR: AddressSanitizer" -e "runtime error:" "$log"; then
    echo "sanitizer reports:" >&2
    grep -n -A 20 -e "ERROR: AddressSanitizer" -e "runtime error:" "$log" >&2
    [ "$status" -ne 0 ] || status=1
fi
exit "$status"
