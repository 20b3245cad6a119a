#!/usr/bin/env bash
# paddock/opencode:latest: opencode-ai on the base image. Usage: build.sh [--force]
exec bash "$(dirname "$0")/../lib/npm-agent.sh" opencode opencode-ai 1.18.33 opencode "$@"
