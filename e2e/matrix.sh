#!/usr/bin/env bash
# make e2e-matrix: what job.yaml does on every Kubernetes release of e2e/releases, observed.
# For each row, a node of its own (e2e/node.sh, built by e2e/build.sh) runs test_releases.py
# and test_lifecycle.py; each run's findings and its JUnit report are kept, committed, in
# tests/fixtures/e2e-matrix/ (a row's new run replaces its old one). Then e2e/matrix-table.py
# writes docs/versions.md's table from every run kept there; tests/test_matrix_table.py checks
# that the two agree.
#
#   e2e/matrix.sh [RELEASE...]    the rows of these releases only (all by default)
#
# Exit status: 0 if every run passed, 1 if one did not (the others still ran), 2 usage.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=tests/fixtures/e2e-matrix
venv=${VENV:-$root/.venv}
rows=$(grep '^[0-9]' e2e/releases)
for release in "$@"; do
  awk -v r="$release" '$1 == r { found = 1 } END { exit !found }' <<<"$rows" ||
    { echo "e2e-matrix: '$release' is not a release of e2e/releases" >&2; exit 2; }
done
mkdir -p "$out"

status=0
while read -r release _ _ gates; do
  (($# == 0)) || [[ " $* " == *" $release "* ]] || continue
  [[ $gates == - ]] && gates=
  name=$release${gates:+-gated}
  echo "e2e-matrix: Kubernetes $release${gates:+ with $gates}" >&2
  # A run that fails before its node is up writes no findings: none of an older run may stay.
  rm -f "$out/$name.json" "$out/$name.xml"
  K8S=$release FEATURE_GATES=$gates E2E_RESULTS=$out/$name.json \
    "$venv/bin/pytest" -rs --junitxml "$out/$name.xml" tests/e2e_node/test_releases.py tests/e2e_node/test_lifecycle.py \
    </dev/null || status=1
done <<<"$rows"

"$venv/bin/python" e2e/matrix-table.py "$out" docs/versions.md
exit $status
