#!/usr/bin/env bash
# How big the catalogue is: case files, steps and lines that are not comments or blank.
#   ci/case-stats.sh [DIR]     # default specs/
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-specs}
files=$(find "$DIR" -mindepth 2 -name '*.toml' | sort)
n=$(echo "$files" | wc -l)
steps=$(cat $files | grep -c '^\[\[step\]\]' || true)
lines=$(cat $files | grep -v '^\s*#' | grep -cv '^\s*$' || true)
sends=$(cat $files | grep -cE '^(send|request) = ' || true)
echo "$n case files, $steps steps, $lines lines that are not comments, $sends send/request steps"
