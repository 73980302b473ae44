#!/usr/bin/env bash
# compare.sh: kiln against Debian's docker-registry (CNCF Distribution 2.8)
# on loopback, same machine, equivalent settings (filesystem stores in the
# same temporary filesystem, delete enabled, logging off or at warn), measured
# with `kiln bench` alternately for ROUNDS rounds (fresh servers and stores
# each round, the order swapped every round); prints the medians.
#
#   bench/compare.sh [kiln bench flags...]      e.g. --blob-size 64MiB
#
# Environment: ROUNDS (3), KILN_PORT (15000), DIST_PORT (15001),
# DIST (/usr/bin/docker-registry), TMPDIR (where the stores live),
# KEEP=1 keeps the work directory (JSON of every run, server logs).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
KILN_PORT=${KILN_PORT:-15000}
DIST_PORT=${DIST_PORT:-15001}
DIST=${DIST:-/usr/bin/docker-registry}
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ ! -x $DIST ]]; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		apt-get install -y docker-registry >/dev/null
	else
		echo "compare.sh: $DIST missing; apt-get install docker-registry" >&2
		exit 1
	fi
fi
command -v jq >/dev/null || { echo "compare.sh: jq is needed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-compare.XXXXXX")
pid=""
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/kiln" ./cmd/kiln)

# start NAME ROUND: writes the config, starts the server, sets pid and url.
start() {
	local name=$1 round=$2 data="$work/data-$1-$2"
	mkdir -p "$data"
	case $name in
	kiln)
		cat >"$work/kiln.yml" <<-YAML
			version: 1
			http:
			  addr: 127.0.0.1:$KILN_PORT
			storage:
			  driver: filesystem
			  filesystem:
			    root: $data
			  delete:
			    enabled: true
			log:
			  level: warn
		YAML
		"$work/kiln" serve --config "$work/kiln.yml" 2>>"$work/kiln.log" &
		pid=$!
		url=http://127.0.0.1:$KILN_PORT
		;;
	distribution)
		cat >"$work/dist.yml" <<-YAML
			version: 0.1
			log:
			  level: error
			  accesslog:
			    disabled: true
			storage:
			  filesystem:
			    rootdirectory: $data
			  delete:
			    enabled: true
			  cache:
			    blobdescriptor: inmemory
			http:
			  addr: 127.0.0.1:$DIST_PORT
		YAML
		"$DIST" serve "$work/dist.yml" 2>>"$work/dist.log" &
		pid=$!
		url=http://127.0.0.1:$DIST_PORT
		;;
	esac
	for _ in $(seq 100); do
		if curl -fs -o /dev/null "$url/v2/"; then return 0; fi
		kill -0 "$pid" 2>/dev/null || { echo "compare.sh: $name exited; see $work/*.log" >&2; KEEP=1; exit 1; }
		sleep 0.1
	done
	echo "compare.sh: $name did not answer on $url" >&2
	KEEP=1
	exit 1
}

stop() {
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""
	rm -rf "$work"/data-*
	sync
}

echo "kiln bench $*; $ROUNDS rounds; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(go version | cut -d' ' -f3); $(date -u +%Y-%m-%dT%H:%MZ)" >&2
for round in $(seq "$ROUNDS"); do
	order="kiln distribution"
	((round % 2 == 0)) && order="distribution kiln"
	for name in $order; do
		echo "round $round: $name" >&2
		start "$name" "$round"
		"$work/kiln" bench "$url" --pid "$pid" --json "$@" >"$work/$name-$round.json" 2>>"$work/bench.log"
		stop
	done
done

# The medians, as a Markdown table.
jq -rs --argjson rounds "$ROUNDS" '
	def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
	def fmt: if . == null then "–" elif . >= 100 then (. | round | tostring)
		elif . >= 10 then ((. * 10 | round) / 10 | tostring) else ((. * 100 | round) / 100 | tostring) end;
	(map(select(.who == "kiln")) | .[0].r.metrics | map({key, name})) as $rows
	| (map(.who as $w | (.r.notes // [])[] | "\($w): \(.)") | unique) as $notes
	| "| figure | kiln | distribution 2.8 | ratio kiln/distribution |",
	  "|---|---:|---:|---:|",
	  ($rows[] as $row
	   | ([.[] | select(.who == "kiln") | .r.metrics[] | select(.key == $row.key) | .value] | median) as $k
	   | ([.[] | select(.who == "distribution") | .r.metrics[] | select(.key == $row.key) | .value] | median) as $d
	   | "| \($row.name) | \($k | fmt) | \($d | fmt) | \(if ($row.key | startswith("client_") | not) and $k != null and $d != null and $d != 0 then ($k / $d * 100 | round / 100 | tostring) + "×" else "–" end) |"),
	  "",
	  "Medians of \($rounds) alternating rounds; digests verified: kiln \(map(select(.who == "kiln") | .r.verified) | add), distribution \(map(select(.who == "distribution") | .r.verified) | add).",
	  ($notes[] | "note, " + .)
' < <(for f in "$work"/kiln-*.json "$work"/distribution-*.json; do
	who=$(basename "$f" | sed 's/-[0-9]*\.json$//')
	jq -c --arg who "$who" '{who: $who, r: .}' "$f"
done)
