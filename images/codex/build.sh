#!/usr/bin/env bash
# paddock/codex:latest: @openai/codex on the base image. Usage: build.sh [--force]
exec bash "$(dirname "$0")/../lib/npm-agent.sh" codex @openai/codex 0.169.0 codex "$@"
