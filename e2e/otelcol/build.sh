#!/usr/bin/env bash
# The real-kubelet node's log shipper for examples/log-shipper.yaml, which names the collector's
# contrib image; nothing can be pulled here, so the test runs an OpenTelemetry Collector built
# from the same components (builder-config.yaml) by the collector's own builder, ocb, as a static
# binary in an image of its own (Dockerfile). Prints the image's name.
#
#   e2e/otelcol/build.sh
#
# Cached by its inputs: the image's tag is a hash of these three files. ocb resolves the modules
# through the Go module proxy (go mod tidy) into a go.mod it writes; the versions are the ones
# builder-config.yaml names.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
ocb=go.opentelemetry.io/collector/cmd/builder@v0.165.0
# shellcheck source=SCRIPTDIR/../../scripts/lib/engine.sh
source "$root/scripts/lib/engine.sh"
find_engine
[[ -n $engine ]] || { echo "e2e/otelcol/build.sh: no container engine answers (docker or podman)" >&2; exit 1; }
tag=$(cat "$here"/build.sh "$here"/builder-config.yaml "$here"/Dockerfile | sha256sum | cut -c1-16)
image=localhost/e2e/otelcol-logs:$tag

if ! "$engine" image inspect "$image" >/dev/null 2>&1; then
  work=$root/.cache/otelcol
  rm -rf "$work" && mkdir -p "$work"
  echo "e2e/otelcol/build.sh: $ocb" >&2
  # Static, as ocb's own release builds are, so the image needs no libc.
  (cd "$work" && CGO_ENABLED=0 go run "$ocb" --config "$here/builder-config.yaml" >&2)
  cp "$here/Dockerfile" "$work/dist/"
  "$engine" build --quiet -t "$image" "$work/dist" >/dev/null
  rm -rf "$work"
fi
echo "$image"
