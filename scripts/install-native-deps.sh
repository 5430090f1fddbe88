#!/usr/bin/env bash
# Installs what the native stack and the tests need on a Debian machine without Docker.
# Idempotent: packages already present are skipped by apt, and the Go-built servers are
# rebuilt only when their pinned version is missing from the cache directory.
set -euo pipefail

MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
STRIPE_MOCK_VERSION="${STRIPE_MOCK_VERSION:-v0.203.0}"
CACHE_DIR="${TENANTRY_CACHE_DIR:-/var/cache/tenantry}"
BIN_DIR="$CACHE_DIR/bin"

packages=(
  postgresql postgresql-contrib redis-server
  nginx libnginx-mod-http-lua lua-resty-core lua-cjson lua-nginx-redis
  wrk dnsutils
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-native-deps: run as root (apt-get and $CACHE_DIR need it)" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-native-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The packaged services must not hold the default ports: every run starts its own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

command -v go >/dev/null || { echo "install-native-deps: Go is required to build MinIO and stripe-mock" >&2; exit 1; }
mkdir -p "$BIN_DIR"

build() { # name module version
  local name="$1" module="$2" version="$3" target="$BIN_DIR/$1-$3"
  if [ -x "$target" ]; then
    echo "install-native-deps: $name $version already built"
  else
    echo "install-native-deps: building $name $version (go install, a few minutes the first time)"
    local gobin; gobin="$(mktemp -d)"
    CGO_ENABLED=0 GOBIN="$gobin" go install "$module@$version"
    mv "$gobin/$name" "$target"
    rm -rf "$gobin"
  fi
  ln -sfn "$target" "$BIN_DIR/$name"
}
build minio github.com/minio/minio "$MINIO_VERSION" &
build_minio=$!
build stripe-mock github.com/stripe/stripe-mock "$STRIPE_MOCK_VERSION"
wait "$build_minio"

# stripe-mock answers from fixtures; tests that read an object back start it with a copy
# whose objects they set (-fixtures), so the bundled file is kept beside the binary.
fixtures="$BIN_DIR/stripe-mock-fixtures-$STRIPE_MOCK_VERSION.json"
if [ ! -s "$fixtures" ]; then
  module_dir="$(go mod download -json "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  cp "$module_dir/embedded/openapi/fixtures3.json" "$fixtures"
fi
ln -sfn "$fixtures" "$BIN_DIR/stripe-mock-fixtures.json"

echo "install-native-deps: done; binaries in $BIN_DIR"
