# Sourced by paddock-entrypoint before the workflow. Copilot CLI calls GitHub's models unless it is given a
# provider of its own (BYOK, COPILOT_PROVIDER_*): the run's Anthropic or OpenAI endpoint and key (Paddock's
# metering proxy, or the request's own), with no GitHub sign-in and no other traffic (COPILOT_OFFLINE).
# COPILOT_PROVIDER_TYPE chooses between them when the run has both (else Anthropic); COPILOT_MODEL is the
# model (a well-known one of the provider otherwise). A request that sets COPILOT_PROVIDER_BASE_URL itself
# keeps its own.
paddock_setup_copilot() {
  [ -z "${COPILOT_PROVIDER_BASE_URL:-}" ] || return 0
  local kind="${COPILOT_PROVIDER_TYPE:-}"
  local anthropic="" openai=""
  [ -n "${ANTHROPIC_BASE_URL:-}" ] && [ -n "${ANTHROPIC_API_KEY:-}" ] && anthropic=1
  [ -n "${OPENAI_BASE_URL:-}" ] && [ -n "${OPENAI_API_KEY:-}" ] && openai=1
  if [ -z "$kind" ]; then
    if [ -n "$anthropic" ]; then kind=anthropic; elif [ -n "$openai" ]; then kind=openai; fi
  fi
  if [ "$kind" = anthropic ] && [ -n "$anthropic" ]; then
    export COPILOT_PROVIDER_TYPE=anthropic COPILOT_PROVIDER_BASE_URL="$ANTHROPIC_BASE_URL" COPILOT_PROVIDER_API_KEY="$ANTHROPIC_API_KEY"
    export COPILOT_MODEL="${COPILOT_MODEL:-claude-sonnet-4}"
  elif [ "$kind" = openai ] && [ -n "$openai" ]; then
    export COPILOT_PROVIDER_TYPE=openai COPILOT_PROVIDER_BASE_URL="$OPENAI_BASE_URL" COPILOT_PROVIDER_API_KEY="$OPENAI_API_KEY"
    export COPILOT_MODEL="${COPILOT_MODEL:-gpt-5.4}"
  else
    return 0
  fi
  export COPILOT_OFFLINE="${COPILOT_OFFLINE:-true}"
}
paddock_setup_copilot
