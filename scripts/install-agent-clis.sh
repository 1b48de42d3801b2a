#!/usr/bin/env bash
# Install pinned versions of the three agent CLIs the harness plugins drive:
#
#   Claude Code  npm  @anthropic-ai/claude-code  -> .tools/agent-clis/node
#   Codex CLI    npm  @openai/codex              -> .tools/agent-clis/node
#   Hermes Agent PyPI hermes-agent               -> .tools/agent-clis/hermes-venv
#
# Idempotent: does nothing when the pinned versions are already installed.
# Only the npm registry and PyPI are contacted, and only when something is
# missing. Works as root and on a clean machine (needs node/npm >= 18 and
# python3 >= 3.11, < 3.14 with the venv module).
#
# Usage: scripts/install-agent-clis.sh [--force] [--print-env]
#   --force      reinstall even if the pinned versions are present
#   --print-env  only print the *_BIN lines (for `eval`), after installing
set -euo pipefail

CLAUDE_CODE_VERSION="2.1.197"
CODEX_VERSION="0.171.0"
HERMES_VERSION="0.19.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${AGENT_CLIS_DIR:-$ROOT/.tools/agent-clis}"
NODE_PREFIX="$DEST/node"
HERMES_VENV="$DEST/hermes-venv"

force=0
print_env=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-env) print_env=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

say() { if [ "$print_env" = 0 ]; then echo "install-agent-clis: $*"; else echo "install-agent-clis: $*" >&2; fi; }
die() { echo "install-agent-clis: error: $*" >&2; exit 1; }

# version of an installed npm package under $NODE_PREFIX, or empty
npm_pkg_version() {
  local pj="$NODE_PREFIX/node_modules/$1/package.json"
  [ -f "$pj" ] || return 0
  node -e 'process.stdout.write(String(require(process.argv[1]).version || ""))' "$pj" 2>/dev/null || true
}

mkdir -p "$DEST"

# --- Claude Code + Codex (npm) ---------------------------------------------
command -v node >/dev/null || die "node not found on PATH (need node >= 18)"
command -v npm >/dev/null || die "npm not found on PATH"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "node $node_major is too old (need >= 18)"

claude_bin="$NODE_PREFIX/node_modules/.bin/claude"
codex_bin="$NODE_PREFIX/node_modules/.bin/codex"

npm_ok() {
  [ "$(npm_pkg_version @anthropic-ai/claude-code)" = "$CLAUDE_CODE_VERSION" ] &&
  [ "$(npm_pkg_version @openai/codex)" = "$CODEX_VERSION" ] &&
  [ -x "$claude_bin" ] && [ -x "$codex_bin" ] &&
  "$claude_bin" --version >/dev/null 2>&1 &&
  "$codex_bin" --version >/dev/null 2>&1
}

if [ "$force" = 0 ] && npm_ok; then
  say "Claude Code $CLAUDE_CODE_VERSION and Codex $CODEX_VERSION already installed"
else
  say "installing Claude Code $CLAUDE_CODE_VERSION and Codex $CODEX_VERSION from the npm registry"
  mkdir -p "$NODE_PREFIX"
  # A private package.json keeps npm from walking up into the repository.
  if [ ! -f "$NODE_PREFIX/package.json" ]; then
    printf '{\n  "name": "opsgate-agent-clis",\n  "private": true\n}\n' > "$NODE_PREFIX/package.json"
  fi
  # Optional dependencies carry the native binaries: never --omit=optional.
  # Install scripts must run (Claude Code links its native binary in postinstall).
  (
    cd "$NODE_PREFIX"
    NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false \
    npm install --prefix "$NODE_PREFIX" --no-save --include=optional \
      --ignore-scripts=false --loglevel=warn \
      "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" >&2
  )
  npm_ok || die "npm install finished but claude/codex do not run (see output above)"
fi

# --- Hermes Agent (PyPI, own venv) ------------------------------------------
hermes_bin="$HERMES_VENV/bin/hermes"
hermes_py="$HERMES_VENV/bin/python"

hermes_ok() {
  [ -x "$hermes_bin" ] && [ -x "$hermes_py" ] &&
  [ "$("$hermes_py" -c 'import importlib.metadata as m; print(m.version("hermes-agent"))' 2>/dev/null)" = "$HERMES_VERSION" ]
}

# Drop pip's per-package notes about unreadable local index locations (machine pip config).
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }

pick_python() {
  local cand
  for cand in "${HERMES_PYTHON:-}" python3 python3.13 python3.12 python3.11; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || continue
    if "$cand" -c 'import sys, venv; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)' 2>/dev/null; then
      command -v "$cand"
      return 0
    fi
  done
  return 1
}

if [ "$force" = 0 ] && hermes_ok; then
  say "Hermes Agent $HERMES_VERSION already installed"
else
  py="$(pick_python)" || die "no python3 between 3.11 and 3.13 with the venv module (set HERMES_PYTHON)"
  say "installing Hermes Agent $HERMES_VERSION from PyPI into $HERMES_VENV (python: $py)"
  rm -rf "$HERMES_VENV"
  "$py" -m venv "$HERMES_VENV"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$hermes_py" -m pip install --quiet --upgrade pip 2>&1 | quiet_pip >&2
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$hermes_py" -m pip install --quiet "hermes-agent==$HERMES_VERSION" 2>&1 | quiet_pip >&2
  hermes_ok || die "pip install finished but hermes-agent $HERMES_VERSION is not importable"
fi

# --- where things are --------------------------------------------------------
if [ "$print_env" = 1 ]; then
  echo "CLAUDE_CODE_BIN=$claude_bin"
  echo "CODEX_BIN=$codex_bin"
  echo "HERMES_BIN=$hermes_bin"
else
  say "binaries:"
  echo "  CLAUDE_CODE_BIN=$claude_bin   ($CLAUDE_CODE_VERSION)"
  echo "  CODEX_BIN=$codex_bin   ($CODEX_VERSION)"
  echo "  HERMES_BIN=$hermes_bin   ($HERMES_VERSION)"
fi
