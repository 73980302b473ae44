#!/usr/bin/env bash
# compare.sh: kiln against CNCF Distribution 2.8 (Debian's docker-registry)
# and 3.x (built from the Go module proxy) on loopback, same machine,
# equivalent settings (filesystem stores in the same temporary filesystem,
# delete enabled, logging off or at warn), measured with `kiln bench` for
# ROUNDS rounds (fresh servers and stores each round, the order rotated
# every round), in these disk regimes (REGIMES picks):
#   fresh    the disk quiet: sync and a pause before each server starts;
#   backlog  right after another writer: BACKLOG_MIB MiB written (no
#            fsync) just before each server starts and left in place (as
#            another registry's blobs would be) until it stops: dirty in
#            the page cache while it is measured (below the kernel's
#            background threshold it is not flushed for 30 s);
#   flushing as backlog, and another process flushes it (sync) while the
#            server is measured: the disk is busy with it.
# (Removing the file right after writing it would not do: its pages, never
# written, are then dropped, and no backlog is left.)
# Prints the medians as Markdown tables, one per regime.
#
#   bench/compare.sh [kiln bench flags...]      e.g. --blob-size 64MiB
#
# Environment: ROUNDS (3), REGIMES ("fresh backlog"; also "flushing"),
# SERVERS ("kiln distribution distribution3": which to run, in rotation),
# KILN_BIN and DIST3_BIN (prebuilt binaries to use instead of building
# kiln from this checkout and Distribution 3 from the proxy: to alternate
# two kiln builds), BACKLOG_MIB (1024),
# KILN_PORT (15000), DIST_PORT (15001), DIST3_PORT (15002),
# DIST (/usr/bin/docker-registry), DIST3_VERSION (v3.1.2), TMPDIR (where
# the stores live), KEEP=1 keeps the work directory (JSON of every run,
# server logs).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
REGIMES=${REGIMES:-fresh backlog}
read -r -a names <<<"${SERVERS:-kiln distribution distribution3}"
BACKLOG_MIB=${BACKLOG_MIB:-1024}
KILN_PORT=${KILN_PORT:-15000}
DIST_PORT=${DIST_PORT:-15001}
DIST3_PORT=${DIST3_PORT:-15002}
DIST=${DIST:-/usr/bin/docker-registry}
DIST3_VERSION=${DIST3_VERSION:-v3.1.2}
root=$(cd "$(dirname "$0")/.." && pwd)

if [[ " ${names[*]} " == *" distribution "* && ! -x $DIST ]]; then
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
flusher=""
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	if [[ -n $flusher ]]; then wait "$flusher" 2>/dev/null || true; fi
	rm -f "$work/backlog"
	sync
	if [[ ${KEEP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [[ -n ${KILN_BIN:-} ]]; then
	cp "$KILN_BIN" "$work/kiln"
else
	(cd "$root" && go build -o "$work/kiln" ./cmd/kiln)
fi
if [[ -n ${DIST3_BIN:-} ]]; then
	DIST3=$DIST3_BIN
elif [[ " ${names[*]} " == *" distribution3 "* ]]; then
	# Distribution 3 from the Go module proxy, outside kiln's module.
	(cd "$work" && GOBIN="$work" GOFLAGS=-mod=mod go install "github.com/distribution/distribution/v3/cmd/registry@$DIST3_VERSION")
	DIST3="$work/registry"
fi

# dist_config PORT DATA: a Distribution config (2.8 and 3 read the same),
# settings as Debian's shipped one: errors only, no access log, delete
# enabled, in-memory blob descriptor cache.
dist_config() {
	cat <<-YAML
		version: 0.1
		log:
		  level: error
		  accesslog:
		    disabled: true
		storage:
		  filesystem:
		    rootdirectory: $2
		  delete:
		    enabled: true
		  cache:
		    blobdescriptor: inmemory
		http:
		  addr: 127.0.0.1:$1
	YAML
}

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
	distribution3)
		dist_config "$DIST3_PORT" "$data" >"$work/dist3.yml"
		OTEL_TRACES_EXPORTER=none "$DIST3" serve "$work/dist3.yml" 2>>"$work/dist3.log" &
		pid=$!
		url=http://127.0.0.1:$DIST3_PORT
		;;
	distribution)
		dist_config "$DIST_PORT" "$data" >"$work/dist.yml"
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
	if [[ -n $flusher ]]; then wait "$flusher" 2>/dev/null || true; flusher=""; fi
	rm -rf "$work"/data-* "$work/backlog"
	sync
}

# settle REGIME: the disk as the regime wants it before a server starts.
settle() {
	case $1 in
	fresh)
		sync
		sleep 2
		;;
	backlog | flushing)
		# Another process's writes, not yet on the disk; stop removes them.
		dd if=/dev/zero of="$work/backlog" bs=1M count="$BACKLOG_MIB" status=none
		if [[ $1 == flushing ]]; then
			sync &
			flusher=$!
		fi
		;;
	esac
}

echo "kiln bench $*; $ROUNDS rounds; regimes: $REGIMES; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(go version | cut -d' ' -f3); $(date -u +%Y-%m-%dT%H:%MZ)" >&2
n=${#names[@]}
for regime in $REGIMES; do
	for round in $(seq "$ROUNDS"); do
		for k in $(seq 0 $((n - 1))); do
			name=${names[$(((round + k) % n))]}
			echo "$regime, round $round: $name" >&2
			settle "$regime"
			start "$name" "$round"
			"$work/kiln" bench "$url" --pid "$pid" --json "$@" >"$work/$regime-$name-$round.json" 2>>"$work/bench.log"
			stop
		done
	done
done

# The medians, as a Markdown table per regime. The last column is how many
# times better kiln is than the better of the two distributions: its rate
# over theirs, or their time over its (above 1×: kiln is ahead).
for regime in $REGIMES; do
	echo
	echo "### disk: $regime"
	echo
	jq -rs --argjson rounds "$ROUNDS" '
	def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
	def fmt: if . == null then "–" elif . >= 100 then (. | round | tostring)
		elif . >= 10 then ((. * 10 | round) / 10 | tostring) else ((. * 100 | round) / 100 | tostring) end;
	def med($who; $key): [.[] | select(.who == $who) | .r.metrics[] | select(.key == $key) | .value] | median;
	(map(select(.who == "kiln")) | .[0].r.metrics | map({key, name, higher: .higher_is_better})) as $rows
	| (map(.who as $w | (.r.notes // [])[] | "\($w): \(.)") | unique) as $notes
	| "| figure | kiln | distribution 2.8 | distribution 3 | kiln vs the best of them |",
	  "|---|---:|---:|---:|---:|",
	  ($rows[] as $row
	   | med("kiln"; $row.key) as $k | med("distribution"; $row.key) as $d | med("distribution3"; $row.key) as $d3
	   | ([$d, $d3] | map(select(. != null and . != 0))) as $anchors
	   | (if ($anchors | length) == 0 then null elif $row.higher then ($anchors | max) else ($anchors | min) end) as $best
	   | (if $k == null or $k == 0 or $best == null then null elif $row.higher then $k / $best else $best / $k end) as $x
	   | "| \($row.name) | \($k | fmt) | \($d | fmt) | \($d3 | fmt) | \(if ($row.key | startswith("client_") | not) and $x != null then ($x * 100 | round / 100 | tostring) + "×" else "–" end) |"),
	  "",
	  "Medians of \($rounds) rounds, order rotated; digests verified: kiln \(map(select(.who == "kiln") | .r.verified) | add), distribution 2.8 \(map(select(.who == "distribution") | .r.verified) | add), distribution 3 \(map(select(.who == "distribution3") | .r.verified) | add).",
	  ($notes[] | "note, " + .)
	' < <(for f in "$work/$regime"-*.json; do
		who=$(basename "$f" .json | sed -e "s/^$regime-//" -e 's/-[0-9]*$//')
		jq -c --arg who "$who" '{who: $who, r: .}' "$f"
	done)
done
