#!/usr/bin/env bash
# paddock/copilot:latest: @github/copilot on the base image. Usage: build.sh [--force]
exec bash "$(dirname "$0")/../lib/npm-agent.sh" copilot @github/copilot 1.0.102 copilot "$@"
