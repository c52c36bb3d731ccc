//! A node's `node.toml` as genesis writes it, with a comment on every setting.

use anyhow::Result;

use crate::config::NodeConfig;

/// A node's file with a comment on every setting.
pub fn node_toml(c: &NodeConfig) -> Result<String> {
    let member = match &c.secrets.member {
        Some(p) => format!("member = {:?}", p.display().to_string()),
        None => "# member = \"secrets/member.json\"   # this node hosts no member".into(),
    };
    Ok(format!(
        r#"# dualchain node configuration (written by `dualchain init`).
# Relative paths are relative to this file's directory.

# This node's validator id in consortium.toml.
node = {node}
consortium = {consortium:?}
params_dir = {params:?}
# RocksDB (consensus log, ledger, CPC store) and the member's own state. Back it up.
data_dir = {data:?}

[secrets]
validator_key = "secrets/validator.key"
tls_key = "secrets/tls.key"
{member}

[api]
# The HTTPS/JSON API for institutions, gateways and peer nodes. Every call but /health,
# /metrics and /openapi.json is signed with a member's key.
listen = "{listen}"
{tls}
body_limit_bytes = {limit}
# Signed requests older or newer than this (seconds) are refused (clocks are NTP-synced).
clock_skew_s = {skew}
# Longest time a `wait` parameter may hold a request (seconds).
wait_max_s = {wait}
# Requests served at once (/health and /metrics aside); past it, 503 with Retry-After.
concurrency_max = {concurrency}
# Longest a request may take, waiting included (seconds); past it, 503 with Retry-After.
request_time_max_s = {time_max}
# Longest a body may take to arrive (seconds); past it, 408.
body_read_max_s = {body_read}
# Signed requests remembered within one clock skew (replays are refused); past it, 503.
nonces_max = {nonces}
# SMART bearer tokens of the member's FHIR clients: life (seconds) and how many at once.
token_ttl_s = {token_ttl}
tokens_max = {tokens_max}

[consensus]
# lan (one data centre), wan (several sites) or loopback (a cluster on one host).
preset = "{preset}"
# view_change_timeout_ms = 2000
# batch_delay_ms = 2
# Requests waiting at this validator beyond which this node's member is refused (503).
# admission_len_max = 8192

[owner]
# For hospitals: where datasets are stored, how many observations posted one by one make a
# dataset, and who may request them: one statement, compiled into the CP-ABE policy of the
# index and the zero-knowledge policy of the proof (keys role, dept, institution, country,
# clearance, training_until; see deploy/config/node.toml.example).
{cpc}
dataset_records = {records}
policy = {policy:?}
# Take Observations only from devices registered here (POST /fhir/Device).
require_registered_devices = {require_devices}
# What a patient without an active Consent consents to: "permit" (every use) or "deny"
# (opt-in only).
consent_default = "{consent_default}"

[owner.disclosure]
# What demands on this hospital's datasets may ask, so that supply proofs answer no
# question about a handful of patients: a threshold of at least min_cohort records, value
# ranges of at least min_value_span thousandths of the unit, time windows of at least
# min_window_min minutes, and demands_per_epoch demands per requester and dataset every
# epoch_h hours. An upload's query parameters of the same names override these.
min_cohort = {min_cohort}
min_value_span = {min_value_span}
min_window_min = {min_window_min}
demands_per_epoch = {demands_per_epoch}
epoch_h = {epoch_h}

[cpc]
# For CPCs: capsules re-encrypted per batch chunk.
reencrypt_chunk = {chunk}

[gpu]
# Use a CUDA device where present; the CPU is the fallback and gives identical results.
enabled = {gpu}
# Refuse to start when the device does not open (instead of falling back to the CPU).
required = false
# CUDA device ordinal.
device = 0

[log]
# A tracing filter, e.g. "info" or "info,dualchain_consensus=debug" (RUST_LOG overrides).
level = "{level}"
# text (one line per event on stderr)
format = "{format}"
"#,
        node = c.node,
        consortium = c.consortium.display().to_string(),
        params = c.params_dir.display().to_string(),
        data = c.data_dir.display().to_string(),
        listen = c.api.listen,
        tls = match (&c.api.tls_cert, &c.api.tls_key) {
            _ if c.api.insecure_http => {
                "# Plain HTTP: loopback tests only (the API carries decrypted records).\ninsecure_http = true"
                    .to_string()
            }
            (Some(cert), Some(key)) => format!(
                "# HTTPS: this node's certificate (DER; issued by the consortium's CA, clients trust\n\
                 # only that CA) and its private key. Both are read again every tls_reload_s seconds:\n\
                 # a renewed pair from that CA serves new connections without a restart.\n\
                 tls_cert = {:?}\ntls_key = {:?}\ntls_reload_s = {}",
                cert.display().to_string(),
                key.display().to_string(),
                c.api.tls_reload_s
            ),
            _ => "# tls_cert = \"api-tls.der\"\n# tls_key = \"secrets/api-tls.key\"".to_string(),
        },
        limit = c.api.body_limit_bytes,
        skew = c.api.clock_skew_s,
        wait = c.api.wait_max_s,
        concurrency = c.api.concurrency_max,
        time_max = c.api.request_time_max_s,
        body_read = c.api.body_read_max_s,
        nonces = c.api.nonces_max,
        token_ttl = c.api.token_ttl_s,
        tokens_max = c.api.tokens_max,
        preset = c.consensus.preset,
        cpc = match &c.owner.default_cpc {
            Some(cpc) => format!("default_cpc = {cpc:?}"),
            None => "# default_cpc = \"cpc-1\"".into(),
        },
        records = c.owner.dataset_records,
        require_devices = c.owner.require_registered_devices,
        consent_default = match c.owner.consent_default {
            crate::member::consent::ConsentDefault::Permit => "permit",
            crate::member::consent::ConsentDefault::Deny => "deny",
        },
        policy = c.owner.policy,
        min_cohort = c.owner.disclosure.min_cohort,
        min_value_span = c.owner.disclosure.min_value_span,
        min_window_min = c.owner.disclosure.min_window_min,
        demands_per_epoch = c.owner.disclosure.demands_per_epoch,
        epoch_h = c.owner.disclosure.epoch_h,
        chunk = c.cpc.reencrypt_chunk,
        gpu = c.gpu.enabled,
        level = c.log.level,
        format = c.log.format,
    ) + &joined_table(c)?)
}

/// `[joined]`: the entry of a validator added after genesis, which consortium.toml does not
/// list (empty for a genesis validator).
fn joined_table(c: &NodeConfig) -> Result<String> {
    let Some(v) = &c.joined else { return Ok(String::new()) };
    Ok(format!(
        "\n[joined]\n# This validator joined after genesis: consortium.toml does not list it. It votes once a\n\
         # validator set change names it (deploy/README.md, \"Adding or removing a validator\").\n{}",
        toml::to_string(v)?
    ))
}
