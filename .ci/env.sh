# Sourced by .ci/run and ./demo: one cargo target directory outside the clone and one compiler
# setting, so DuckDB's C++ (about 20 minutes on two cores) compiles once per machine for the
# tests, the demo and later clones alike (its build script rebuilds it when CC or CXX change).
cache=${PIPEDRIVE_SYNC_CACHE:-/var/tmp/pipedrive-sync-cache}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
export CCACHE_DIR=${CCACHE_DIR:-$cache/ccache}
mkdir -p "$CARGO_TARGET_DIR" "$CCACHE_DIR"

# ccache turns the DuckDB C++ compile into about a minute once it is warm.
if ! command -v ccache >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -q ccache >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q ccache >/dev/null 2>&1; } || true
fi
if command -v ccache >/dev/null 2>&1; then
  export CC="ccache gcc" CXX="ccache g++"
  ccache --max-size=5G >/dev/null
fi
