#!/usr/bin/env bash
# Brings up a local 4-node dualchain cluster as four institutions would (each makes its
# keys in its own directory with `dualchain keygen`; a multi-party Groth16 ceremony among
# the four; the coordinator assembles the consortium from public contributions with
# `dualchain assemble`; each checks it and joins with `dualchain join`; the members' IBE
# and CP-ABE keys are issued by the authorities' nodes when they start), runs a smoke flow
# through the HTTPS API with `dualchain client` (upload a FHIR Bundle, demand, supply
# proof, policy proof and grant, re-encryption, fetch and decrypt, audit), checks that the
# four ledgers are identical, and tears the cluster down with SIGTERM.
#
#   deploy/local-cluster.sh               # smoke flow, then tear down
#   KEEP=1 deploy/local-cluster.sh        # leave the cluster running (prints how to stop it)
#   CEREMONY=0 deploy/local-cluster.sh    # test parameters made by the coordinator instead
#                                         # of the ceremony (a test consortium; faster)
#
# Uses $DUALCHAIN_BIN, else target/release/dualchain (built if missing). With CEREMONY=0,
# Groth16 parameters come from ~/.cache/dualchain/params (generated there on first use).
# The ceremony (policy and supply-64 shapes) takes about two minutes on 2 cores, most of
# it `ceremony start`'s group FFTs; each node verifies the transcripts once at first start
# (seconds: random linear combinations checked by MSMs).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${DUALCHAIN_BIN:-$target/release/dualchain}
if [[ ! -x $bin ]]; then
    echo "building $bin"
    (cd "$root" && cargo build --release -p dualchain)
fi
dir=${CLUSTER_DIR:-$(mktemp -d -t dualchain-cluster.XXXXXX)}
pids=()

teardown() {
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "cluster left running in $dir; stop it with: kill -TERM ${pids[*]}"
        return
    fi
    echo "stopping the nodes (SIGTERM)"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap teardown EXIT

field() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval('v' + sys.argv[1]))" "$1"; }
client() { local node=$1; shift; "$bin" client --config "$dir/${inst[$node]}/node.toml" --json "$@"; }
# The whole answer first: grep -q would close the pipe early (a broken pipe under pipefail).
ready() { local h; h=$(client "$1" health 2>/dev/null) && [[ $h == *'"ready": true'* ]]; }
free_port() { python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=='udp' else socket.SOCK_STREAM); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])" "$1"; }

name="local cluster"
inst=(kgc hospital-a research-1 cpc-1)
roles=(kgc hospital research cpc)
attrs=("" "dept:icu" "dept:cardiology" "")
echo "genesis across 4 institutions in $dir"
for i in 0 1 2 3; do
    extra=()
    [[ -n ${attrs[$i]} ]] && extra+=(--attr "${attrs[$i]}")
    [[ ${roles[$i]} == cpc ]] && extra+=(--ibe-after "$dir/kgc/contribution.toml")
    "$bin" keygen --consortium "$name" --id "${inst[$i]}" --role "${roles[$i]}" --host 127.0.0.1 \
        --quic-port "$(free_port udp)" --api-port "$(free_port tcp)" --dir "$dir/${inst[$i]}" "${extra[@]}" >/dev/null
done
echo "  keys made; the coordinator receives only $dir/*/contribution.toml"
if [[ ${CEREMONY:-1} == 1 ]]; then
    echo "  Groth16 ceremony among the four (policy, supply-64)"
    "$bin" ceremony new --dir "$dir/ceremony" --supply-records 64 2>>"$dir/ceremony.log"
    for i in 0 1 2 3; do "$bin" ceremony tau --dir "$dir/ceremony" --name "${inst[$i]}" >>"$dir/ceremony.log" 2>&1; done
    "$bin" ceremony start --dir "$dir/ceremony" >>"$dir/ceremony.log" 2>&1
    for i in 0 1 2 3; do "$bin" ceremony delta --dir "$dir/ceremony" --name "${inst[$i]}" >>"$dir/ceremony.log" 2>&1; done
    params=(--ceremony "$dir/ceremony")
else
    params=(--test-params)
fi
"$bin" assemble --name "$name" --ca "$dir/ca" --out "$dir/genesis" "${params[@]}" \
    $(for i in 0 1 2 3; do echo --contribution "$dir/${inst[$i]}/contribution.toml"; done) 2>>"$dir/assemble.log" | sed 's/^/  /'
for i in 0 1 2 3; do
    "$bin" join --dir "$dir/${inst[$i]}" --genesis "$dir/genesis" --preset loopback >/dev/null
done
echo "  every institution checked the consortium against its contribution and joined"
for i in 0 1 2 3; do
    "$bin" node --config "$dir/${inst[$i]}/node.toml" 2>"$dir/node-$i.log" &
    pids+=($!)
done

if [[ ${CEREMONY:-1} == 1 ]]; then
    echo "each node verifies the ceremony's transcripts once, at first start"
fi
echo -n "waiting for the nodes"
for i in 0 1 2 3; do
    for _ in $(seq 2400); do
        if ready "$i"; then break; fi
        sleep 0.5; echo -n .
    done
    ready "$i" || { echo; echo "node $i did not become ready:"; tail -20 "$dir/node-$i.log"; exit 1; }
done
echo " ready"

# A ward's FHIR transaction Bundle: 4 patients, 24 heart-rate observations of the last hour.
python3 - "$dir/bundle.json" <<'PY'
import json, sys, time
now = int(time.time())
iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
entries = [{"fullUrl": f"urn:uuid:p{p}", "resource": {"resourceType": "Patient", "id": f"ward7-p{p}",
            "gender": ["male", "female"][p % 2], "birthDate": f"19{55 + p}-06-1{p}"}} for p in range(4)]
for i in range(24):
    entries.append({"request": {"method": "POST", "url": "Observation"}, "resource": {
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": f"Patient/ward7-p{i % 4}"}, "effectiveDateTime": iso(now - 3600 + 120 * i),
        "valueQuantity": {"value": 58 + (i * 7) % 50, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}}})
json.dump({"resourceType": "Bundle", "type": "transaction", "entry": entries}, open(sys.argv[1], "w"))
PY

echo "hospital-a uploads a Bundle of 24 observations"
dataset=$(client 1 upload "$dir/bundle.json" --dataset ward-7 | field '["meta"]["tag"][0]["code"]')
echo "  dataset $dataset"
echo "research-1 publishes a demand (>= 10 heart rates in 40..200/min)"
demand=$(client 2 demand --dataset "$dataset" --min 40 --max 200 --threshold 10 | field '["demand"]')
supplied=$(client 2 demand-status "$demand" --wait 120 | field '["supplied_by"] is not None')
[[ $supplied == True ]] || { echo "no supply proof"; exit 1; }
echo "  hospital-a's node proved supply"
echo "research-1 proves its access policy and requests a grant"
answer=$(client 2 request --demand "$demand")
[[ $(echo "$answer" | field '["granted"]') == True ]] || { echo "not granted: $answer"; exit 1; }
grant=$(echo "$answer" | field '["request"]')
echo "  granted: $grant"
echo "research-1 fetches and decrypts the records (re-encrypted by cpc-1)"
client 2 fetch "$grant" --wait 120 --out "$dir/records.json" >/dev/null
n=$(field '["total"]' <"$dir/records.json")
[[ $n == 24 ]] || { echo "fetched $n records, expected 24"; exit 1; }
echo "  $n records decrypted"
for _ in $(seq 100); do
    prints=$(for i in 0 1 2 3; do client "$i" health | field '["ledger"]'; done | sort -u | wc -l)
    [[ $prints == 1 ]] && break
    sleep 0.2
done
[[ $prints == 1 ]] || { echo "ledgers differ"; exit 1; }
echo "the four ledgers are identical"
verified=$(client 0 audit "$dataset" | field '["records"][0]["proof_verified"]')
[[ $verified == True ]] || { echo "audit proof not verified"; exit 1; }
echo "audit: the access record's inclusion proof checks against the KGC node's blocks"

echo "smoke flow passed"
