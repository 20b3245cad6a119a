# Sourced by paddock-entrypoint before the workflow. Gemini CLI takes its endpoint from
# GOOGLE_GEMINI_BASE_URL, but with it set and no auth type chosen it picks one ("gateway") that a
# non-interactive run refuses ("Invalid auth method selected"): its settings choose the API key of
# GEMINI_API_KEY. Settings already there stay. And /workspace is the run's own: trusted, so that --yolo is
# not turned down to asking for every tool.
paddock_setup_gemini_cli() {
  export GEMINI_CLI_TRUST_WORKSPACE="${GEMINI_CLI_TRUST_WORKSPACE:-true}"
  [ -n "${GEMINI_API_KEY:-}" ] && [ ! -e "$HOME/.gemini/settings.json" ] || return 0
  mkdir -p "$HOME/.gemini" || return 1
  printf '{\n  "security": { "auth": { "selectedType": "gemini-api-key" } }\n}\n' > "$HOME/.gemini/settings.json"
}
paddock_setup_gemini_cli
