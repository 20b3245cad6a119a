#!/usr/bin/env bash
# paddock/gemini-cli:latest: @google/gemini-cli on the base image. Usage: build.sh [--force]
exec bash "$(dirname "$0")/../lib/npm-agent.sh" gemini-cli @google/gemini-cli 0.61.0 gemini "$@"
