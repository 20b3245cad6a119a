# Sourced by paddock-entrypoint before the workflow. OpenCode reads its providers' endpoints from its
# config, not from the environment: each provider the run has an endpoint and a key for (Paddock's metering
# proxy, or the request's own) gets them there. A config already there stays.
paddock_setup_opencode() {
  local file="$HOME/.config/opencode/opencode.json" providers=()
  [ ! -e "$file" ] || return 0
  # JSON strings: the endpoint's backslashes and quotes escaped.
  quoted() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }
  # OpenCode's SDKs take the base with its API version, which ANTHROPIC_BASE_URL and GOOGLE_GEMINI_BASE_URL leave out.
  [ -n "${OPENAI_BASE_URL:-}" ] && [ -n "${OPENAI_API_KEY:-}" ] &&
    providers+=("\"openai\": { \"options\": { \"baseURL\": $(quoted "$OPENAI_BASE_URL"), \"apiKey\": \"{env:OPENAI_API_KEY}\" } }")
  [ -n "${ANTHROPIC_BASE_URL:-}" ] && [ -n "${ANTHROPIC_API_KEY:-}" ] &&
    providers+=("\"anthropic\": { \"options\": { \"baseURL\": $(quoted "${ANTHROPIC_BASE_URL%/}/v1"), \"apiKey\": \"{env:ANTHROPIC_API_KEY}\" } }")
  [ -n "${GOOGLE_GEMINI_BASE_URL:-}" ] && [ -n "${GEMINI_API_KEY:-}" ] &&
    providers+=("\"google\": { \"options\": { \"baseURL\": $(quoted "${GOOGLE_GEMINI_BASE_URL%/}/v1beta"), \"apiKey\": \"{env:GEMINI_API_KEY}\" } }")
  unset -f quoted
  [ "${#providers[@]}" -gt 0 ] || return 0
  mkdir -p "$(dirname "$file")" || return 1
  local IFS=,
  printf '{\n  "$schema": "https://opencode.ai/config.json",\n  "provider": { %s }\n}\n' "${providers[*]}" > "$file"
}
paddock_setup_opencode
