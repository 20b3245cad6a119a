#!/usr/bin/env bash
# paddock/claude-code:latest: @anthropic-ai/claude-code on the base image. Usage: build.sh [--force]
exec bash "$(dirname "$0")/../lib/npm-agent.sh" claude-code @anthropic-ai/claude-code 2.1.197 claude "$@"
