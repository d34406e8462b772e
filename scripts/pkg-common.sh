# Shared by scripts/build-deb and scripts/build-rpm (sourced, not run).
# Packages are built from a copy of the tree (the files git tracks or would track,
# with their modification times), so the build cannot write into the worktree and
# its results land in target/pkg/, not in the directory above the repository.
# Cargo builds into target/pkg/cargo, shared by both package builds (run them one
# after the other) and kept between runs, so only changed code is rebuilt.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/target/pkg"
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -n 1)
export CARGO_TARGET_DIR="$OUT/cargo"
mkdir -p "$OUT" "$CARGO_TARGET_DIR"

# Writes a tar stream of the source tree to stdout, every path under $1/.
source_tar() {
  (cd "$REPO" && git ls-files -co --exclude-standard -z \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - --transform "s,^,$1/," -cf -)
}
