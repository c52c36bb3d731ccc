#!/usr/bin/env bash
# A FHIR integration engine's calls to a dualchain node with nothing but curl and openssl:
# SMART Backend Services with an RS384 client assertion, then a transaction Bundle and a
# search with the bearer token.
#
#   openssl genrsa -out KEY.pem 3072                       # the client's key, kept by it
#   scripts/fhir-smart-curl.sh jwks KEY.pem KID > JWKS.json # its public JWK Set, to register
#   dualchain client --config node.toml smart-add engine --jwks JWKS.json \
#       --scope "system/Observation.write system/Observation.read system/Patient.write"
#   scripts/fhir-smart-curl.sh flow https://HOST:PORT/fhir CA.der engine KEY.pem KID \
#       BUNDLE.json "code=8867-4&_count=10" OUT_DIR
#
# `flow` reads the token endpoint from the node's SMART discovery document, signs the
# assertion (iss = sub = the client id, aud = the token endpoint, exp in four minutes, a
# random jti), gets a token, posts the Bundle and runs the search; it writes token.json
# (without the token), transaction-response.json and search.json to OUT_DIR and stops at
# the first HTTP error (curl --fail-with-body), printing the node's answer.
set -euo pipefail

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
hex2bin() {
  local h=$1 i
  ((${#h} % 2)) && h="0$h"
  for ((i = 0; i < ${#h}; i += 2)); do printf "\\x${h:i:2}"; done
}

jwks() {
  local key=$1 kid=$2 n e
  n=$(openssl rsa -in "$key" -noout -modulus | cut -d= -f2)
  e=$(openssl rsa -in "$key" -noout -text | sed -n 's/^publicExponent: [0-9]* (0x\([0-9a-fA-F]*\))$/\1/p')
  printf '{"keys":[{"kty":"RSA","kid":"%s","alg":"RS384","use":"sig","n":"%s","e":"%s"}]}\n' \
    "$kid" "$(hex2bin "$n" | b64url)" "$(hex2bin "$e" | b64url)"
}

# The JSON string value of "name" in a one-line JSON object (no jq on a bare machine).
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

assertion() {
  local id=$1 key=$2 kid=$3 aud=$4 header payload now
  now=$(date +%s)
  header=$(printf '{"alg":"RS384","typ":"JWT","kid":"%s"}' "$kid" | b64url)
  payload=$(printf '{"iss":"%s","sub":"%s","aud":"%s","exp":%d,"jti":"%s"}' \
    "$id" "$id" "$aud" $((now + 240)) "$(openssl rand -hex 16)" | b64url)
  printf '%s.%s.%s' "$header" "$payload" \
    "$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha384 -sign "$key" -binary | b64url)"
}

flow() {
  local base=${1%/} ca_der=$2 id=$3 key=$4 kid=$5 bundle=$6 query=$7 out=$8
  mkdir -p "$out"
  local ca="$out/ca.pem"
  openssl x509 -inform DER -in "$ca_der" -out "$ca"
  local curl=(curl -sS --fail-with-body --cacert "$ca")
  local token_url
  token_url=$("${curl[@]}" "$base/.well-known/smart-configuration" | field token_endpoint)
  [ -n "$token_url" ] || { echo "no token_endpoint in $base/.well-known/smart-configuration" >&2; exit 1; }
  local answer
  answer=$("${curl[@]}" "$token_url" \
    --data-urlencode grant_type=client_credentials \
    --data-urlencode "scope=system/Observation.write system/Observation.read system/Patient.write" \
    --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
    --data-urlencode "client_assertion=$(assertion "$id" "$key" "$kid" "$token_url")")
  local token
  token=$(field access_token <<<"$answer")
  [ -n "$token" ] || { echo "no access_token: $answer" >&2; exit 1; }
  sed 's/"access_token":"[^"]*",\{0,1\}//' <<<"$answer" >"$out/token.json"
  local auth=(-H "Authorization: Bearer $token" -H "Accept: application/fhir+json")
  "${curl[@]}" "${auth[@]}" -H "Content-Type: application/fhir+json" --data-binary "@$bundle" \
    "$base" -o "$out/transaction-response.json"
  "${curl[@]}" "${auth[@]}" "$base/Observation?$query" -o "$out/search.json"
}

case "${1:-}" in
  jwks) shift; jwks "$@" ;;
  flow) shift; flow "$@" ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
