//! PBFT messages, their wire encoding and their signatures (Castro & Liskov, TOCS 2002, §2.3
//! normal case, §2.4 garbage collection, §2.5 view changes, §5.3 state transfer).
//!
//! Every protocol message is a [`Signed`] body: `from ‖ body ‖ Ed25519 signature` over
//! `kind ‖ from ‖ signing bytes of the body`, under the domain `dualchain/v1/pbft`. The
//! pre-prepare's signature covers `(view, seq, digest)` only, with the batch carried beside
//! it and checked against the digest, so prepared certificates, view changes and new views
//! carry signed headers, never batches (as in the paper, where they carry digests). Bodies
//! that may be large and that the receiver checks by their content (forwarded requests,
//! fetched batches, state replies) are signed over their SHA-256.
//!
//! Decoding treats input as adversarial: every list and byte string has a named maximum,
//! unknown tags are refused, and nothing is trusted before [`Signed::verify`] (or a batch
//! verification) and the core's checks.

use std::sync::Arc;

use dualchain_crypto::encoding::Reader;
use dualchain_crypto::error::DecodeError;
use dualchain_crypto::sign::{verify_batch, PublicKey, SignedItem, SigningKeypair, SIGNATURE_LEN};
use sha2::{Digest as _, Sha256};

/// A replica's index in the consortium's validator list.
pub type ReplicaId = u8;
/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Most replicas a consortium may have.
pub const REPLICAS_MAX: usize = 64;
/// Largest payload of one request (a ledger transaction).
pub const REQUEST_PAYLOAD_LEN_MAX: usize = 1 << 20;
/// Most requests in one batch or one forward.
pub const BATCH_REQUESTS_MAX: usize = 1 << 16;
/// Largest encoded batch.
pub const BATCH_BYTES_MAX: usize = 16 << 20;
/// Most prepared certificates one view change carries (the widest watermark span).
pub const WATERMARK_SPAN_MAX: u64 = 1024;
/// Most committed entries in one state reply.
pub const STATE_ENTRIES_MAX: usize = 256;
/// Largest frame on the wire.
pub const MESSAGE_LEN_MAX: usize = 64 << 20;

const _: () = assert!(BATCH_BYTES_MAX + (1 << 16) <= MESSAGE_LEN_MAX, "a pre-prepare with a full batch fits a frame");
const _: () = assert!(REQUEST_PAYLOAD_LEN_MAX + 24 <= BATCH_BYTES_MAX, "one request fits a batch");

/// Signature domain of every consensus message.
pub const SIGNATURE_USE: &str = "pbft";

// Body kinds: the first byte of a frame and of every signature's message.
const KIND_FORWARD: u8 = 1;
const KIND_PRE_PREPARE: u8 = 2;
const KIND_VOTE: u8 = 3;
const KIND_CHECKPOINT: u8 = 4;
const KIND_VIEW_CHANGE: u8 = 5;
const KIND_NEW_VIEW: u8 = 6;
const KIND_FETCH_BATCH: u8 = 7;
const KIND_BATCH_REPLY: u8 = 8;
const KIND_FETCH_STATE: u8 = 9;
const KIND_STATE_REPLY: u8 = 10;
const KIND_STATE_ROOT: u8 = 11;
/// A validator's approval of a validator set change (the `membership` module): never a
/// message of its own, carried inside a reconfiguration request.
pub(crate) const KIND_APPROVAL: u8 = 12;
const KIND_DISSEMINATE: u8 = 13;
const KIND_HOLDING: u8 = 14;
const KIND_AVAILABLE: u8 = 15;
const KIND_PROPOSE: u8 = 16;

/// Most parts one proposal by reference names ([`Refs`]).
pub const PARTS_MAX: usize = 1024;

/// SHA-256 under a dualchain domain.
pub fn hash(domain: &str, parts: &[&[u8]]) -> Digest {
    let mut h = Sha256::new();
    h.update(b"dualchain/v1/pbft/");
    h.update(domain.as_bytes());
    h.update([0]);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

// ---- encoding helpers -----------------------------------------------------------------

pub(crate) fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&u32::try_from(v).expect("bounded length").to_be_bytes());
}
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len());
    out.extend_from_slice(b);
}
fn invalid(what: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid { what, reason: reason.into() }
}

// ---- requests and batches ---------------------------------------------------------------

/// A client request: an opaque payload (a signed ledger transaction) with the client's id
/// and its request number. Replicas execute each request once (§2.3); the
/// de-duplication key is [`Request::key`].
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub client: u64,
    pub id: u64,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request({}:{}, {} bytes)", self.client, self.id, self.payload.len())
    }
}

/// What identifies a request for de-duplication: `(client, id, payload digest)`.
///
/// Beyond DESIGN.md (and Castro–Liskov §2.3), whose key is `(client, id)`: with that key a
/// Byzantine replica could forward a request of its own under another client's next id
/// (ids are predictable) and have it ordered first, and the client's genuine request was
/// then dropped as a duplicate: a way to censor a member, e.g. the KGC's revocations. With
/// the payload's digest in the key a squatted `(client, id)` no longer shadows the genuine
/// request, which only its member can sign; the ledger refuses the squatter's payload.
pub type RequestKey = (u64, u64, u64);

impl Request {
    /// The de-duplication key (see [`RequestKey`]): the first 8 bytes of SHA-256 over the
    /// payload. Finding a second payload of the same digest takes 2^64 work, and the
    /// genuine payload carries a signature nobody else can compute in advance.
    pub fn key(&self) -> RequestKey {
        let d = sha2::Sha256::digest(&self.payload);
        (self.client, self.id, u64::from_be_bytes(d[..8].try_into().expect("8 bytes")))
    }

    pub fn encoded_len(&self) -> usize {
        20 + self.payload.len()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.client);
        put_u64(out, self.id);
        put_bytes(out, &self.payload);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let client = r.u64()?;
        let id = r.u64()?;
        let payload = r.bytes("request payload", REQUEST_PAYLOAD_LEN_MAX)?.to_vec();
        Ok(Self { client, id, payload })
    }
}

fn encode_requests(requests: &[Request]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + requests.iter().map(Request::encoded_len).sum::<usize>());
    encode_requests_into(&mut out, requests);
    out
}

fn encode_requests_into(out: &mut Vec<u8>, requests: &[Request]) {
    put_u32(out, requests.len());
    for r in requests {
        r.encode(out);
    }
}

fn decode_requests(bytes: &[u8]) -> Result<Vec<Request>, DecodeError> {
    decode_whole(bytes, "requests", decode_requests_from)
}

fn decode_requests_from(r: &mut Reader<'_>) -> Result<Vec<Request>, DecodeError> {
    let n = r.count("requests", BATCH_REQUESTS_MAX)?;
    let mut out = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        out.push(Request::decode(r)?);
    }
    Ok(out)
}

/// An ordered batch of requests, the unit PBFT agrees on, with the time the primary
/// proposed it (UNIX milliseconds; 0 for none). Its digest is the SHA-256 of its encoding,
/// so a commit certificate binds the time too: the ledger's clock (grant expiry,
/// certificate validity) is agreed, not read from any one machine — the paper's way with
/// non-deterministic values chosen by the primary and checked by the backups (TOCS §5.2).
/// The empty batch with time 0 is the paper's null request (§2.5: sequence numbers a new
/// primary fills without a prepared certificate).
#[derive(Clone, PartialEq, Eq)]
pub struct Batch {
    time_ms: u64,
    requests: Vec<Request>,
    encoded: Vec<u8>,
    digest: Digest,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} requests, {})", self.requests.len(), short(&self.digest))
    }
}

/// The first bytes of a digest in hex, for logs.
pub fn short(d: &Digest) -> String {
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl Batch {
    /// A batch without a time (tests; null batches).
    pub fn new(requests: Vec<Request>) -> Self {
        Self::with_time(0, requests)
    }
    pub fn with_time(time_ms: u64, requests: Vec<Request>) -> Self {
        let mut encoded = Vec::with_capacity(12 + requests.iter().map(Request::encoded_len).sum::<usize>());
        put_u64(&mut encoded, time_ms);
        encode_requests_into(&mut encoded, &requests);
        let digest = hash("batch", &[&encoded]);
        Self { time_ms, requests, encoded, digest }
    }
    /// The proposal time (UNIX milliseconds), 0 for none.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }
    pub fn null() -> Self {
        Self::new(Vec::new())
    }
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }
    pub fn digest(&self) -> Digest {
        self.digest
    }
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }
    pub fn is_null(&self) -> bool {
        self.requests.is_empty()
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > BATCH_BYTES_MAX {
            return Err(DecodeError::TooLong { what: "batch", len: bytes.len(), max: BATCH_BYTES_MAX });
        }
        let (time_ms, requests) = decode_whole(bytes, "batch", |r| Ok((r.u64()?, decode_requests_from(r)?)))?;
        Ok(Self { time_ms, requests, digest: hash("batch", &[bytes]), encoded: bytes.to_vec() })
    }

    /// The batch of `time_ms` whose requests are the parts' requests in order: the same
    /// batch, encoding and digest as [`Batch::with_time`] over the concatenation, built
    /// from the parts' encodings. `None` past [`BATCH_REQUESTS_MAX`] or [`BATCH_BYTES_MAX`].
    pub fn join(time_ms: u64, parts: &[&Batch]) -> Option<Self> {
        let count: usize = parts.iter().map(|p| p.requests.len()).sum();
        // Each part's encoding is `time ‖ count ‖ requests`: 12 bytes before its requests.
        let bytes = 12 + parts.iter().map(|p| p.encoded.len() - 12).sum::<usize>();
        if count > BATCH_REQUESTS_MAX || bytes > BATCH_BYTES_MAX {
            return None;
        }
        let mut encoded = Vec::with_capacity(bytes);
        put_u64(&mut encoded, time_ms);
        put_u32(&mut encoded, count);
        let mut requests = Vec::with_capacity(count);
        for p in parts {
            encoded.extend_from_slice(&p.encoded[12..]);
            requests.extend(p.requests.iter().cloned());
        }
        let digest = hash("batch", &[&encoded]);
        Some(Self { time_ms, requests, encoded, digest })
    }

    /// The payload of request `at` of an encoded batch (`None` past its last request),
    /// read without decoding or copying the others: what reading one transaction of an
    /// archived batch needs. The encoding is checked up to that request only, and the
    /// batch's digest not at all: the caller checks the payload against a hash it holds.
    pub fn payload_at(encoded: &[u8], at: usize) -> Result<Option<&[u8]>, DecodeError> {
        if encoded.len() > BATCH_BYTES_MAX {
            return Err(DecodeError::TooLong { what: "batch", len: encoded.len(), max: BATCH_BYTES_MAX });
        }
        let mut r = Reader::new(encoded, "batch");
        r.u64()?;
        if at >= r.count("requests", BATCH_REQUESTS_MAX)? {
            return Ok(None);
        }
        for _ in 0..at {
            r.take(16)?;
            r.bytes("request payload", REQUEST_PAYLOAD_LEN_MAX)?;
        }
        r.take(16)?;
        Ok(Some(r.bytes("request payload", REQUEST_PAYLOAD_LEN_MAX)?))
    }

    /// Whether this batch can be a part (dissemination): requests and no time.
    pub fn is_part(&self) -> bool {
        self.time_ms == 0 && !self.requests.is_empty()
    }
}

/// The digest of the null batch.
pub fn null_digest() -> Digest {
    Batch::null().digest()
}

// ---- bodies ---------------------------------------------------------------------------

/// A message body: its kind, encoding and the bytes its signature covers.
pub trait Body: Sized + Clone + std::fmt::Debug {
    const KIND: u8;
    const NAME: &'static str;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// What the signature covers (after `kind ‖ from`); the encoding by default.
    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A body signed by a replica.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<T> {
    pub from: ReplicaId,
    pub body: T,
    pub sig: [u8; SIGNATURE_LEN],
}

impl<T: std::fmt::Debug> std::fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} from {}", self.body, self.from)
    }
}

impl<T: Body> Signed<T> {
    fn message(from: ReplicaId, body: &T) -> Vec<u8> {
        let mut m = vec![T::KIND, from];
        m.extend_from_slice(&body.signing_bytes());
        m
    }
    pub fn sign(key: &SigningKeypair, from: ReplicaId, body: T) -> Self {
        let sig = key.sign(SIGNATURE_USE, &Self::message(from, &body));
        Self { from, body, sig }
    }
    /// Checks the signature against the sender's key (unknown senders fail).
    pub fn verify(&self, keys: &[PublicKey]) -> bool {
        keys.get(self.from as usize)
            .is_some_and(|k| k.verify(SIGNATURE_USE, &Self::message(self.from, &self.body), &self.sig))
    }
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.from);
        self.body.encode(out);
        out.extend_from_slice(&self.sig);
    }
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let from = r.u8()?;
        if from as usize >= REPLICAS_MAX {
            return Err(invalid("replica id", format!("{from} is not below {REPLICAS_MAX}")));
        }
        let body = T::decode(r)?;
        let sig = r.array::<SIGNATURE_LEN>()?;
        Ok(Self { from, body, sig })
    }
}

/// Verifies many signed bodies of one kind at once; `Err(i)` names a bad one (or an unknown
/// sender).
pub fn verify_all<T: Body>(items: &[&Signed<T>], keys: &[PublicKey]) -> Result<(), usize> {
    let mut messages = Vec::with_capacity(items.len());
    for (i, s) in items.iter().enumerate() {
        if keys.get(s.from as usize).is_none() {
            return Err(i);
        }
        messages.push(Signed::<T>::message(s.from, &s.body));
    }
    let entries: Vec<SignedItem<'_>> = items
        .iter()
        .zip(&messages)
        .map(|(s, m)| SignedItem { key: &keys[s.from as usize], use_: SIGNATURE_USE, msg: m, sig: &s.sig })
        .collect();
    verify_batch(&entries)
}

pub(crate) fn decode_list<T>(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
    mut f: impl FnMut(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let n = r.count(field, max)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(f(r)?);
    }
    Ok(out)
}

/// Decodes exactly one value from `bytes` (no trailing bytes).
pub(crate) fn decode_whole<T>(
    bytes: &[u8],
    what: &'static str,
    f: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes, what);
    let v = f(&mut r)?;
    r.finish()?;
    Ok(v)
}

pub(crate) fn encode_list<T: Body>(out: &mut Vec<u8>, items: &[Signed<T>]) {
    put_u32(out, items.len());
    for i in items {
        i.encode(out);
    }
}

/// A pre-prepare's signed header (§2.3): the primary of `view` assigns `seq` to the batch
/// with `digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
}

impl Body for Header {
    const KIND: u8 = KIND_PRE_PREPARE;
    const NAME: &'static str = "pre-prepare";
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.view);
        put_u64(out, self.seq);
        out.extend_from_slice(&self.digest);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { view: r.u64()?, seq: r.u64()?, digest: r.array()? })
    }
}

/// The phase of a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Prepare,
    Commit,
}

/// A prepare or commit for `(view, seq, digest)` (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub phase: Phase,
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
}

impl Body for Vote {
    const KIND: u8 = KIND_VOTE;
    const NAME: &'static str = "vote";
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self.phase {
            Phase::Prepare => 0,
            Phase::Commit => 1,
        });
        put_u64(out, self.view);
        put_u64(out, self.seq);
        out.extend_from_slice(&self.digest);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let phase = match r.u8()? {
            0 => Phase::Prepare,
            1 => Phase::Commit,
            value => return Err(DecodeError::UnknownVariant { what: "vote phase", value }),
        };
        Ok(Self { phase, view: r.u64()?, seq: r.u64()?, digest: r.array()? })
    }
}

/// A checkpoint vote (§2.4): after executing `seq`, the replica's history digest is
/// `digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointVote {
    pub seq: u64,
    pub digest: Digest,
}

impl Body for CheckpointVote {
    const KIND: u8 = KIND_CHECKPOINT;
    const NAME: &'static str = "checkpoint";
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.seq);
        out.extend_from_slice(&self.digest);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { seq: r.u64()?, digest: r.array()? })
    }
}

/// A state-root vote: after executing checkpoint `seq`, the replica's application reports
/// `root` as the commitment to its state (see `Replica::attest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateVote {
    pub seq: u64,
    pub root: Digest,
}

impl Body for StateVote {
    const KIND: u8 = KIND_STATE_ROOT;
    const NAME: &'static str = "state-root";
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.seq);
        out.extend_from_slice(&self.root);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { seq: r.u64()?, root: r.array()? })
    }
}

/// A prepared certificate (§2.5, the set P): a pre-prepare and 2f matching prepares from
/// other replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub pre_prepare: Signed<Header>,
    pub prepares: Vec<Signed<Vote>>,
}

/// A stable-checkpoint proof: 2f + 1 matching checkpoint votes (none for sequence 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointProof {
    pub seq: u64,
    pub digest: Digest,
    pub votes: Vec<Signed<CheckpointVote>>,
}

impl CheckpointProof {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.seq);
        out.extend_from_slice(&self.digest);
        encode_list(out, &self.votes);
    }
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let seq = r.u64()?;
        let digest = r.array()?;
        let votes = decode_list(r, "checkpoint votes", REPLICAS_MAX, Signed::decode)?;
        Ok(Self { seq, digest, votes })
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_whole(bytes, "checkpoint proof", Self::decode)
    }
}

/// VIEW-CHANGE (§2.5): the replica moves to `view`, with its stable checkpoint and the
/// prepared certificates above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChange {
    pub view: u64,
    pub checkpoint: CheckpointProof,
    pub prepared: Vec<Prepared>,
}

impl Body for ViewChange {
    const KIND: u8 = KIND_VIEW_CHANGE;
    const NAME: &'static str = "view-change";
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.view);
        self.checkpoint.encode(out);
        put_u32(out, self.prepared.len());
        for p in &self.prepared {
            p.pre_prepare.encode(out);
            encode_list(out, &p.prepares);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let view = r.u64()?;
        let checkpoint = CheckpointProof::decode(r)?;
        let prepared = decode_list(r, "prepared certificates", WATERMARK_SPAN_MAX as usize, |r| {
            let pre_prepare = Signed::decode(r)?;
            let prepares = decode_list(r, "prepares", REPLICAS_MAX, Signed::decode)?;
            Ok(Prepared { pre_prepare, prepares })
        })?;
        Ok(Self { view, checkpoint, prepared })
    }
}

/// NEW-VIEW (§2.5): 2f + 1 view changes for `view` and the pre-prepares (the set O) the new
/// primary derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewView {
    pub view: u64,
    pub view_changes: Vec<Signed<ViewChange>>,
    pub pre_prepares: Vec<Signed<Header>>,
}

impl Body for NewView {
    const KIND: u8 = KIND_NEW_VIEW;
    const NAME: &'static str = "new-view";
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.view);
        encode_list(out, &self.view_changes);
        encode_list(out, &self.pre_prepares);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let view = r.u64()?;
        let view_changes = decode_list(r, "view changes", REPLICAS_MAX, Signed::decode)?;
        let pre_prepares = decode_list(r, "new-view pre-prepares", WATERMARK_SPAN_MAX as usize, Signed::decode)?;
        Ok(Self { view, view_changes, pre_prepares })
    }
    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        hash("new-view", &[&out]).to_vec()
    }
}

/// Requests a backup passes on to the primary (§2.3: "the backups … relay the request").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub requests: Vec<Request>,
}

impl Body for Forward {
    const KIND: u8 = KIND_FORWARD;
    const NAME: &'static str = "forward";
    fn encode(&self, out: &mut Vec<u8>) {
        let enc = encode_requests(&self.requests);
        put_bytes(out, &enc);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { requests: decode_requests(r.bytes("forwarded requests", BATCH_BYTES_MAX)?)? })
    }
    fn signing_bytes(&self) -> Vec<u8> {
        hash("forward", &[&encode_requests(&self.requests)]).to_vec()
    }
}

/// Asks a peer for the batch with `digest` (a new view named it; this replica lacks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchBatch {
    pub digest: Digest,
}

impl Body for FetchBatch {
    const KIND: u8 = KIND_FETCH_BATCH;
    const NAME: &'static str = "fetch-batch";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.digest);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { digest: r.array()? })
    }
}

/// A batch sent in answer to [`FetchBatch`]; trusted through its digest only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReply {
    pub batch: Arc<Batch>,
}

impl Body for BatchReply {
    const KIND: u8 = KIND_BATCH_REPLY;
    const NAME: &'static str = "batch";
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.batch.encoded());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { batch: Arc::new(Batch::decode(r.bytes("batch", BATCH_BYTES_MAX)?)?) })
    }
    fn signing_bytes(&self) -> Vec<u8> {
        self.batch.digest().to_vec()
    }
}

// ---- dissemination apart from ordering ----------------------------------------------------

/// A part: requests a replica took from its clients (or relays), sent to every replica
/// before any ordering. It is a [`Batch`] without a time ([`Batch::is_part`]), named by
/// its digest; the signature covers the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disseminate {
    pub part: Arc<Batch>,
}

impl Body for Disseminate {
    const KIND: u8 = KIND_DISSEMINATE;
    const NAME: &'static str = "disseminate";
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.part.encoded());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let part = Batch::decode(r.bytes("part", BATCH_BYTES_MAX)?)?;
        if !part.is_part() {
            return Err(invalid("part", "a part carries requests and no time"));
        }
        Ok(Self { part: Arc::new(part) })
    }
    fn signing_bytes(&self) -> Vec<u8> {
        self.part.digest().to_vec()
    }
}

/// A replica holds the part with `digest` (its availability vote, sent to the part's
/// origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    pub digest: Digest,
}

impl Body for Holding {
    const KIND: u8 = KIND_HOLDING;
    const NAME: &'static str = "holding";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.digest);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { digest: r.array()? })
    }
}

/// An availability certificate: a quorum of replicas hold the part with `digest`, so at
/// least one correct replica (f + 1 when n = 3f + 1) can hand it to any that lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    pub digest: Digest,
    pub votes: Vec<Signed<Holding>>,
}

impl Available {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.digest);
        encode_list(out, &self.votes);
    }
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let digest = r.array()?;
        let votes = decode_list(r, "holding votes", REPLICAS_MAX, Signed::decode)?;
        Ok(Self { digest, votes })
    }

    /// Checks the certificate: `quorum` votes for its digest from distinct replicas that
    /// `counts` admits, each signature valid under `keys`.
    pub fn check(
        &self,
        quorum: usize,
        counts: impl Fn(ReplicaId) -> bool,
        keys: &[PublicKey],
    ) -> Result<(), CertError> {
        let mut signers = std::collections::BTreeSet::new();
        for v in &self.votes {
            if v.body.digest != self.digest {
                return Err(CertError::Forged("a holding vote for another part"));
            }
            if !signers.insert(v.from) {
                return Err(CertError::Forged("two holding votes from one replica"));
            }
        }
        let items: Vec<&Signed<Holding>> = self.votes.iter().collect();
        verify_all(&items, keys).map_err(|_| CertError::Forged("a holding vote with a bad signature"))?;
        if !self.counts(quorum, counts) {
            return Err(CertError::Short);
        }
        Ok(())
    }

    /// Whether `quorum` of the votes' signers are ones `counts` admits (signatures
    /// unchecked: [`Available::check`]).
    pub fn counts(&self, quorum: usize, counts: impl Fn(ReplicaId) -> bool) -> bool {
        let signers: std::collections::BTreeSet<ReplicaId> = self.holders().filter(|r| counts(*r)).collect();
        signers.len() >= quorum
    }

    /// The replicas that hold the part, by their votes.
    pub fn holders(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.votes.iter().map(|v| v.from)
    }
}

impl Body for Available {
    const KIND: u8 = KIND_AVAILABLE;
    const NAME: &'static str = "available";
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_into(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_from(r)
    }
}

/// Why an availability certificate does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertError {
    /// No correct replica makes it (a bad signature, a vote for another part, a signer
    /// twice): its sender is faulty.
    Forged(&'static str),
    /// Valid votes, but fewer than a quorum of the set that counts (certified under an
    /// earlier validator set).
    Short,
}

/// A proposal by reference: the batch of a pre-prepare named by its time and its parts
/// (each with its availability certificate). The batch is [`Batch::join`] of the parts;
/// the pre-prepare's header, signed over that batch's digest, binds it, so the
/// references themselves need no signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    pub time_ms: u64,
    pub parts: Vec<Available>,
}

impl Refs {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.time_ms);
        put_u32(out, self.parts.len());
        for p in &self.parts {
            p.encode_into(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let time_ms = r.u64()?;
        let parts = decode_list(r, "parts", PARTS_MAX, Available::decode_from)?;
        Ok(Self { time_ms, parts })
    }
}

/// Asks a peer for committed entries from `from_seq` on (§5.3, state transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchState {
    pub from_seq: u64,
}

impl Body for FetchState {
    const KIND: u8 = KIND_FETCH_STATE;
    const NAME: &'static str = "fetch-state";
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.from_seq);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { from_seq: r.u64()? })
    }
}

/// A committed batch with its commit certificate (2f + 1 matching commits, §2.3): what a
/// replica archives, hands to the ledger, and serves in state transfer. Self-verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEntry {
    pub seq: u64,
    pub view: u64,
    pub batch: Arc<Batch>,
    pub certificate: Vec<Signed<Vote>>,
}

impl CommittedEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.seq);
        put_u64(out, self.view);
        put_bytes(out, self.batch.encoded());
        encode_list(out, &self.certificate);
    }
    /// The encoding around the batch: `head ‖ batch ‖ tail` is [`CommittedEntry::encode`]'s
    /// output, `head` ending in the batch's length (for storing the batch once).
    pub fn encode_around_batch(&self, head: &mut Vec<u8>) -> Vec<u8> {
        put_u64(head, self.seq);
        put_u64(head, self.view);
        put_u32(head, self.batch.encoded().len());
        let mut tail = Vec::with_capacity(110 * self.certificate.len() + 4);
        encode_list(&mut tail, &self.certificate);
        tail
    }
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let seq = r.u64()?;
        let view = r.u64()?;
        let batch = Arc::new(Batch::decode(r.bytes("batch", BATCH_BYTES_MAX)?)?);
        let certificate = decode_list(r, "commit certificate", REPLICAS_MAX, Signed::decode)?;
        Ok(Self { seq, view, batch, certificate })
    }
    /// The commit certificate as encoded in the log (for block headers).
    pub fn certificate_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(110 * self.certificate.len() + 4);
        encode_list(&mut out, &self.certificate);
        out
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.batch.encoded().len() + 64 + 110 * self.certificate.len());
        self.encode(&mut out);
        out
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_whole(bytes, "committed entry", Self::decode)
    }
}

/// Committed entries in answer to [`FetchState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateReply {
    pub entries: Vec<CommittedEntry>,
    /// The server's stable checkpoint (sequence 0: none yet). A replica that executed as
    /// far but never saw the votes (a validator added by a change, which the old set did
    /// not send its votes for the change's boundary) makes it stable from this proof.
    pub checkpoint: CheckpointProof,
}

impl Body for StateReply {
    const KIND: u8 = KIND_STATE_REPLY;
    const NAME: &'static str = "state";
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.entries.len());
        for e in &self.entries {
            e.encode(out);
        }
        self.checkpoint.encode(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let entries = decode_list(r, "state entries", STATE_ENTRIES_MAX, CommittedEntry::decode)?;
        Ok(Self { entries, checkpoint: CheckpointProof::decode(r)? })
    }
    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        hash("state", &[&out]).to_vec()
    }
}

// ---- frames ---------------------------------------------------------------------------

/// Evaluates `$body` with `$s` bound to the signed body of any message variant.
macro_rules! on_signed {
    ($msg:expr, $s:ident => $body:expr) => {
        match $msg {
            Message::Forward($s) => $body,
            Message::PrePrepare($s, _) => $body,
            Message::Vote($s) => $body,
            Message::Checkpoint($s) => $body,
            Message::ViewChange($s) => $body,
            Message::NewView($s) => $body,
            Message::FetchBatch($s) => $body,
            Message::BatchReply($s) => $body,
            Message::FetchState($s) => $body,
            Message::StateReply($s) => $body,
            Message::StateRoot($s) => $body,
            Message::Disseminate($s) => $body,
            Message::Holding($s) => $body,
            Message::Available($s) => $body,
            Message::Propose($s, _) => $body,
        }
    };
}

/// The frame kind of a signed body (each body's kind is its frame's first byte).
fn kind_of<T: Body>(_: &Signed<T>) -> u8 {
    T::KIND
}

/// One frame on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Forward(Signed<Forward>),
    PrePrepare(Signed<Header>, Arc<Batch>),
    Vote(Signed<Vote>),
    Checkpoint(Signed<CheckpointVote>),
    ViewChange(Signed<ViewChange>),
    NewView(Signed<NewView>),
    FetchBatch(Signed<FetchBatch>),
    BatchReply(Signed<BatchReply>),
    FetchState(Signed<FetchState>),
    StateReply(Signed<StateReply>),
    StateRoot(Signed<StateVote>),
    Disseminate(Signed<Disseminate>),
    Holding(Signed<Holding>),
    Available(Signed<Available>),
    /// A pre-prepare whose batch travels as references to disseminated parts.
    Propose(Signed<Header>, Arc<Refs>),
}

impl Message {
    /// The replica that signed the frame.
    pub fn from(&self) -> ReplicaId {
        on_signed!(self, s => s.from)
    }

    /// A short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Forward(_) => Forward::NAME,
            Message::PrePrepare(..) => Header::NAME,
            Message::Vote(v) if v.body.phase == Phase::Prepare => "prepare",
            Message::Vote(_) => "commit",
            Message::Checkpoint(_) => CheckpointVote::NAME,
            Message::ViewChange(_) => ViewChange::NAME,
            Message::NewView(_) => NewView::NAME,
            Message::FetchBatch(_) => FetchBatch::NAME,
            Message::BatchReply(_) => BatchReply::NAME,
            Message::FetchState(_) => FetchState::NAME,
            Message::StateReply(_) => StateReply::NAME,
            Message::StateRoot(_) => StateVote::NAME,
            Message::Disseminate(_) => Disseminate::NAME,
            Message::Holding(_) => Holding::NAME,
            Message::Available(_) => Available::NAME,
            Message::Propose(..) => "propose",
        }
    }

    /// (view, sequence number) of an ordering message, for traces.
    pub fn position(&self) -> Option<(u64, u64)> {
        match self {
            Message::PrePrepare(h, _) | Message::Propose(h, _) => Some((h.body.view, h.body.seq)),
            Message::Vote(v) => Some((v.body.view, v.body.seq)),
            Message::Checkpoint(c) => Some((0, c.body.seq)),
            _ => None,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        on_signed!(self, s => {
            out.push(kind_of(s));
            s.encode(out);
        });
        if let Message::Propose(..) = self {
            // A pre-prepare's header (signed as one) framed as a proposal by reference.
            out[start] = KIND_PROPOSE;
        }
        match self {
            Message::PrePrepare(_, batch) => put_bytes(out, batch.encoded()),
            Message::Propose(_, refs) => refs.encode(out),
            _ => {}
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// A pre-prepare's encoding up to its batch: `head ‖ batch` is [`Message::encode`]'s
    /// output, `head` ending in the batch's length (for storing the batch once). Other
    /// frames carry no batch: `None`.
    pub fn head_before_batch(&self) -> Option<Vec<u8>> {
        let Message::PrePrepare(s, batch) = self else { return None };
        let mut out = vec![kind_of(s)];
        s.encode(&mut out);
        put_u32(&mut out, batch.encoded().len());
        Some(out)
    }

    /// The kind byte of an encoded frame.
    pub fn kind_of(frame: &[u8]) -> Option<u8> {
        frame.first().copied()
    }

    /// Whether frames of this kind order requests (pre-prepares, votes, checkpoints), as
    /// opposed to control traffic (forwards, view changes, fetches, state). Availability
    /// votes and certificates are small and gate proposals: ordering too; parts are bulk.
    pub fn is_ordering_kind(kind: u8) -> bool {
        matches!(kind, KIND_PRE_PREPARE | KIND_PROPOSE | KIND_VOTE | KIND_CHECKPOINT | KIND_HOLDING | KIND_AVAILABLE)
    }

    /// Decodes one frame; bounded, refuses unknown kinds and trailing bytes. Signatures are
    /// checked separately ([`Message::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MESSAGE_LEN_MAX {
            return Err(DecodeError::TooLong { what: "consensus message", len: bytes.len(), max: MESSAGE_LEN_MAX });
        }
        let mut r = Reader::new(bytes, "consensus message");
        let m = match r.u8()? {
            KIND_FORWARD => Message::Forward(Signed::decode(&mut r)?),
            KIND_PRE_PREPARE => {
                let s = Signed::decode(&mut r)?;
                let batch = Batch::decode(r.bytes("batch", BATCH_BYTES_MAX)?)?;
                Message::PrePrepare(s, Arc::new(batch))
            }
            KIND_VOTE => Message::Vote(Signed::decode(&mut r)?),
            KIND_CHECKPOINT => Message::Checkpoint(Signed::decode(&mut r)?),
            KIND_VIEW_CHANGE => Message::ViewChange(Signed::decode(&mut r)?),
            KIND_NEW_VIEW => Message::NewView(Signed::decode(&mut r)?),
            KIND_FETCH_BATCH => Message::FetchBatch(Signed::decode(&mut r)?),
            KIND_BATCH_REPLY => Message::BatchReply(Signed::decode(&mut r)?),
            KIND_FETCH_STATE => Message::FetchState(Signed::decode(&mut r)?),
            KIND_STATE_REPLY => Message::StateReply(Signed::decode(&mut r)?),
            KIND_STATE_ROOT => Message::StateRoot(Signed::decode(&mut r)?),
            KIND_DISSEMINATE => Message::Disseminate(Signed::decode(&mut r)?),
            KIND_HOLDING => Message::Holding(Signed::decode(&mut r)?),
            KIND_AVAILABLE => Message::Available(Signed::decode(&mut r)?),
            KIND_PROPOSE => {
                // The header is a pre-prepare's: signed under its kind.
                let s = Signed::decode(&mut r)?;
                Message::Propose(s, Arc::new(Refs::decode(&mut r)?))
            }
            value => return Err(DecodeError::UnknownVariant { what: "consensus message kind", value }),
        };
        r.finish()?;
        Ok(m)
    }

    /// The signer, signed message and signature, for batch verification.
    fn signature_parts(&self) -> (ReplicaId, Vec<u8>, &[u8; SIGNATURE_LEN]) {
        on_signed!(self, s => (s.from, Signed::message(s.from, &s.body), &s.sig))
    }
}

/// Verifies the frame signatures of many messages with one batch equation and returns, for
/// each, whether it is authentic (a failed batch falls back to one-by-one checks). A
/// pre-prepare whose batch does not match its digest is not authentic.
pub fn verify_messages(messages: &[Message], keys: &[PublicKey]) -> Vec<bool> {
    let mut ok = vec![true; messages.len()];
    let mut parts = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let (from, msg, sig) = m.signature_parts();
        let digest_ok = match m {
            Message::PrePrepare(s, batch) => s.body.digest == batch.digest(),
            _ => true,
        };
        if keys.get(from as usize).is_none() || !digest_ok {
            ok[i] = false;
            continue;
        }
        parts.push((i, from, msg, sig));
    }
    let items: Vec<SignedItem<'_>> = parts
        .iter()
        .map(|(_, from, msg, sig)| SignedItem { key: &keys[*from as usize], use_: SIGNATURE_USE, msg, sig })
        .collect();
    if verify_batch(&items).is_err() {
        for (i, from, msg, sig) in &parts {
            ok[*i] = keys[*from as usize].verify(SIGNATURE_USE, msg, sig);
        }
    }
    ok
}
