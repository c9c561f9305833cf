# npm_install, shared by apps-up.sh and integration/bench/companion-up.sh (sourced, not run).
# The caller defines say() and die().

command -v sha256sum >/dev/null 2>&1 || sha256sum() { shasum -a 256; }

# npm_install SRC WHAT [DIR]: installs the npm package dir SRC (package.json and its pinned
# package-lock.json) with npm ci into DIR, by default
# ~/.cache/upload-gateway/<basename of SRC>-<hash of the lock file>/, unless it is there already;
# sets PKG.
npm_install() {
  local src=$1 what=$2 h tmp
  h=$(sha256sum <"$src/package-lock.json" | cut -c1-16)
  PKG=${3:-$HOME/.cache/upload-gateway/$(basename "$src")-$h}
  [ -f "$PKG/.installed" ] && return 0
  mkdir -p "$(dirname "$PKG")"
  tmp=$PKG.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp "$src/package.json" "$src/package-lock.json" "$tmp/"
  say "installing $what into $PKG (npm ci from the pinned lock file)"
  if ! (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund >&2); then
    rm -rf "$tmp"
    die "npm ci failed (see above); is the npm registry reachable?"
  fi
  rm -rf "$PKG"
  mv "$tmp" "$PKG"
  touch "$PKG/.installed"
}
