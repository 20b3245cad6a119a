# Sourced by paddock-entrypoint before the workflow. Codex reads its endpoint from config.toml, not from
# OPENAI_BASE_URL: when the run has one (Paddock's metering proxy, or an endpoint of the request's own), a
# model provider that leads there, with the key of OPENAI_API_KEY, over the Responses API (all Codex speaks).
# A config.toml already there (from /etc/skel in an image built on this one) is the user's choice and stays.
paddock_setup_codex() {
  local dir="${CODEX_HOME:-$HOME/.codex}" url="${OPENAI_BASE_URL:-}"
  [ -n "$url" ] && [ ! -e "$dir/config.toml" ] || return 0
  url=${url//\\/\\\\}
  url=${url//\"/\\\"}
  mkdir -p "$dir" || return 1
  cat > "$dir/config.toml" <<TOML
model_provider = "paddock"

[model_providers.paddock]
name = "OpenAI (OPENAI_BASE_URL)"
base_url = "$url"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
TOML
}
paddock_setup_codex
