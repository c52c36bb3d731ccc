//! Validator set changes: who the replicas are, epoch by epoch, and the ordered request
//! that changes it.
//!
//! DESIGN.md §5 fixes the validator set at genesis. Here it changes by an ordered decision
//! of the current validators.
//!
//! A set of any size n tolerates f = ⌊(n − 1)/3⌋ faults, and its quorum is
//! ⌈(n + f + 1)/2⌉ ([`Membership::quorum`]), so that any two quorums share a correct
//! validator. That is PBFT's 2f + 1 when n = 3f + 1 (every genesis of 4, 7, 10, …), and
//! more otherwise: 4 of 5, 6 of 8. Where the docs of this crate say "2f + 1", they mean the
//! quorum of the set in effect, and "2f" prepares mean the quorum less the pre-prepare.
//!
//! - 2f + 1 validators of the current set sign an [`Approval`] of the next set (epoch and
//!   SHA-256 of the members and their keys). Any replica submits the collected
//!   [`Reconfiguration`] as an ordinary request under [`RECONFIGURE_CLIENT`].
//! - Every replica executes the same committed request at the same sequence number `s`
//!   and checks it the same way ([`Epochs::schedule`]): the next epoch, a well-formed set
//!   of at least 4, approvals from a quorum of the current set. Execution is
//!   deterministic, so every correct replica schedules the same change, or refuses it.
//! - The new set governs the sequence numbers above `E`, the first checkpoint at or above
//!   `s + L − 1` (L: the watermark span). This is the α-window of Lamport, Malkhi and
//!   Zhou ("Reconfiguring a State Machine", SIGACT News 41(1), 2010) with α = L: a replica
//!   that has not executed `s` yet votes on no sequence number above
//!   `last executed + L ≤ s − 1 + L` (the replica caps its window there too), so nothing
//!   above `E` is ever ordered under the old set. Replicas that know of the change accept
//!   nothing above `E` until `E` is a stable checkpoint, so no slot is ever ordered under
//!   two sets; then the new set takes over, in the same view, whose primary is now
//!   `members[view mod n]` of the new set. While a change is pending, a primary with
//!   nothing to order fills the sequence numbers up to `E` with null batches, so the
//!   change takes effect within a few round trips on an idle consortium.
//! - A joining replica starts from genesis as a *learner*: it votes on nothing, fetches
//!   committed entries (each verified by its own commit certificate, under the set that
//!   governed its sequence number) until it has executed the change, and votes once `E` is
//!   stable at it. A removed replica stops voting at the same point; the others no longer
//!   send to it, serve it state or take requests it forwards (a member hosted at a removed
//!   validator's node needs another way in: a follower mode of the node, not built yet).
//!
//! Replica ids index the *roster*, every validator key the consortium has had; an id is
//! never reused (a removed validator's old signatures stay verifiable in the archive), so
//! a consortium has at most [`REPLICAS_MAX`] validator identities over its life.

use dualchain_crypto::encoding::Reader;
use dualchain_crypto::error::DecodeError;
use dualchain_crypto::sign::{PublicKey, SigningKeypair};

use crate::message::{
    decode_list, decode_whole, encode_list, hash, put_u32, put_u64, verify_all, Body, Digest, ReplicaId, Request,
    Signed, KIND_APPROVAL, REPLICAS_MAX,
};

/// The client id reconfiguration requests are ordered under (their request number is the
/// epoch they start). A member's client id is a SHA-256 prefix of its name, so a member
/// colliding with this one is a 2⁻⁶⁴ event; its requests would only fail to decode here.
pub const RECONFIGURE_CLIENT: u64 = u64::MAX - 1;

/// Fewest validators a set may have (n = 3f + 1 with f ≥ 1).
pub const MEMBERS_MIN: usize = 4;
/// Largest endpoint of a new validator (its address and TLS certificate, as the host
/// encodes them).
pub const ENDPOINT_LEN_MAX: usize = 8 << 10;

/// A validator's approval of the set of epoch `epoch` whose [`Reconfiguration::digest`]
/// is `change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approval {
    pub epoch: u64,
    pub change: Digest,
}

impl Body for Approval {
    const KIND: u8 = KIND_APPROVAL;
    const NAME: &'static str = "approval";
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.epoch);
        out.extend_from_slice(&self.change);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { epoch: r.u64()?, change: r.array()? })
    }
}

/// A validator set change as ordered: the set of `epoch`, complete, where to reach the
/// validators it adds, and the approvals of the set before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfiguration {
    pub epoch: u64,
    /// Every validator of the new set with its consensus key, ascending ids.
    pub members: Vec<(ReplicaId, PublicKey)>,
    /// How the hosts reach validators of the new set, ascending ids (opaque to the replica;
    /// the QUIC engine's address and pinned TLS certificate, `engine::endpoint_bytes`):
    /// for those the change adds, and for those it keeps under a new endpoint (a
    /// validator's TLS certificate or address rotated in place, keeping its id and
    /// consensus key). Approvals cover them, so nobody can redirect a validator's traffic.
    pub endpoints: Vec<(ReplicaId, Vec<u8>)>,
    pub approvals: Vec<Signed<Approval>>,
}

/// A validator and its endpoint, as a change names them.
pub type Endpoint = (ReplicaId, Vec<u8>);

impl Reconfiguration {
    /// What approvals sign: the epoch, the members with their keys, the new endpoints.
    pub fn digest(epoch: u64, members: &[(ReplicaId, PublicKey)], endpoints: &[Endpoint]) -> Digest {
        let mut bytes = Vec::with_capacity(8 + 33 * members.len());
        put_u64(&mut bytes, epoch);
        put_u32(&mut bytes, members.len());
        for (id, key) in members {
            bytes.push(*id);
            bytes.extend_from_slice(key.as_bytes());
        }
        put_u32(&mut bytes, endpoints.len());
        for (id, e) in endpoints {
            bytes.push(*id);
            put_u32(&mut bytes, e.len());
            bytes.extend_from_slice(e);
        }
        hash("reconfiguration", &[&bytes])
    }

    /// A validator's approval of `members` (reached at `endpoints`, for those it adds) as
    /// the set of `epoch`.
    pub fn approve(
        key: &SigningKeypair,
        from: ReplicaId,
        epoch: u64,
        members: &[(ReplicaId, PublicKey)],
        endpoints: &[Endpoint],
    ) -> Signed<Approval> {
        Signed::sign(key, from, Approval { epoch, change: Self::digest(epoch, members, endpoints) })
    }

    /// One approval's encoding, as a validator hands it to whoever collects them.
    pub fn approval_to_bytes(approval: &Signed<Approval>) -> Vec<u8> {
        let mut out = Vec::new();
        approval.encode(&mut out);
        out
    }

    /// Reads [`Self::approval_to_bytes`] back (the signature is checked where the change
    /// executes, or with [`Self::approval_verifies`]).
    pub fn approval_from_bytes(bytes: &[u8]) -> Result<Signed<Approval>, DecodeError> {
        decode_whole(bytes, "approval", Signed::decode)
    }

    /// Whether `approval` is `key`'s signature over this change's set and endpoints.
    pub fn approval_verifies(&self, approval: &Signed<Approval>, key: &PublicKey) -> bool {
        let change = Self::digest(self.epoch, &self.members, &self.endpoints);
        // `verify_all` reads the key at the approver's id.
        let keys = vec![*key; approval.from as usize + 1];
        approval.body == (Approval { epoch: self.epoch, change }) && verify_all(&[approval], &keys).is_ok()
    }

    /// The request that orders this change.
    pub fn request(&self) -> Request {
        Request { client: RECONFIGURE_CLIENT, id: self.epoch, payload: self.to_bytes() }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u64(&mut out, self.epoch);
        put_u32(&mut out, self.members.len());
        for (id, key) in &self.members {
            out.push(*id);
            out.extend_from_slice(key.as_bytes());
        }
        put_u32(&mut out, self.endpoints.len());
        for (id, e) in &self.endpoints {
            out.push(*id);
            put_u32(&mut out, e.len());
            out.extend_from_slice(e);
        }
        encode_list(&mut out, &self.approvals);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_whole(bytes, "reconfiguration", |r| {
            let epoch = r.u64()?;
            let members = decode_list(r, "members", REPLICAS_MAX, |r| {
                let id = r.u8()?;
                Ok((id, PublicKey::from_raw(&r.array()?)?))
            })?;
            let endpoints = decode_list(r, "endpoints", REPLICAS_MAX, |r| {
                let id = r.u8()?;
                let n = r.count("endpoint", ENDPOINT_LEN_MAX)?;
                Ok((id, r.take(n)?.to_vec()))
            })?;
            let approvals = decode_list(r, "approvals", REPLICAS_MAX, Signed::decode)?;
            Ok(Self { epoch, members, endpoints, approvals })
        })
    }
}

/// The fewest approvals any change needs: the quorum of the smallest set
/// ([`MEMBERS_MIN`] validators, quorum 3).
pub const APPROVALS_MIN: usize = 3;

/// Why a forwarded change is not worth ordering ([`Reconfiguration::precheck_forwarded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardRefusal {
    /// Refused whatever the validator sets are: the forwarder could have known.
    Forged(&'static str),
    /// Named an approver this replica does not know yet (its roster may lag).
    Unknown(&'static str),
}

impl Reconfiguration {
    /// What a replica checks of a forwarded change before it spends an ordering slot on it,
    /// knowing only the roster (every key the consortium has had, by id, which never
    /// changes for an id): it decodes, carries at least [`APPROVALS_MIN`] approvals from
    /// distinct validators, each of this very change, each signed by its validator. The
    /// quorum of the set in effect is checked where the change executes
    /// ([`Epochs::schedule`]); this only keeps a replica from having the consortium order
    /// changes that no set could accept.
    pub fn precheck_forwarded(payload: &[u8], roster: &[PublicKey]) -> Result<(), ForwardRefusal> {
        use ForwardRefusal::{Forged, Unknown};
        let r = Self::from_bytes(payload).map_err(|_| Forged("not a validator set change"))?;
        if r.approvals.len() < APPROVALS_MIN {
            return Err(Forged("a validator set change with fewer approvals than any set's quorum"));
        }
        let body = Approval { epoch: r.epoch, change: Self::digest(r.epoch, &r.members, &r.endpoints) };
        let mut senders = std::collections::BTreeSet::new();
        for a in &r.approvals {
            if a.body != body || !senders.insert(a.from) {
                return Err(Forged("an approval names another change or repeats an approver"));
            }
            if a.from as usize >= roster.len() {
                return Err(Unknown("an approver this replica does not know"));
            }
        }
        let refs: Vec<_> = r.approvals.iter().collect();
        verify_all(&refs, roster).map_err(|_| Forged("an approval's signature does not verify"))
    }
}

/// The validators of one epoch and the sequence numbers they govern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// 0 at genesis, one more with each change.
    pub epoch: u64,
    /// The set governs the sequence numbers above this one (0 at genesis; a change's `E`,
    /// a checkpoint).
    pub after_seq: u64,
    /// Ascending replica ids.
    pub members: Vec<ReplicaId>,
}

impl Membership {
    pub fn n(&self) -> usize {
        self.members.len()
    }
    /// Faults tolerated: ⌊(n − 1)/3⌋.
    pub fn f(&self) -> usize {
        (self.n() - 1) / 3
    }
    /// ⌈(n + f + 1) / 2⌉: any two quorums share more than f validators, so at least one
    /// correct one, whatever n is (2f + 1 when n = 3f + 1; a set of 5 or 8, which a change
    /// can make, needs 4 or 6: 2f + 1 would let two quorums meet in f validators only).
    /// n − f correct validators still make a quorum when n ≥ 3f + 1.
    pub fn quorum(&self) -> usize {
        (self.n() + self.f() + 2) / 2
    }
    /// Prepares from backups that, with the pre-prepare, make a prepared certificate:
    /// quorum − 1 (2f when n = 3f + 1).
    pub fn prepares_needed(&self) -> usize {
        self.quorum() - 1
    }
    /// The primary of `view` (§2.2's p = v mod n, over this set).
    pub fn primary(&self, view: u64) -> ReplicaId {
        self.members[(view % self.n() as u64) as usize]
    }
    pub fn contains(&self, id: ReplicaId) -> bool {
        self.members.binary_search(&id).is_ok()
    }
}

/// Why a reconfiguration was not scheduled (every correct replica refuses it alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("undecodable: {0}")]
    Undecodable(String),
    #[error("a change to epoch {0} is still pending")]
    Pending(u64),
    #[error("epoch {got} is not the next epoch {next}")]
    WrongEpoch { got: u64, next: u64 },
    #[error("the request number {0} is not the epoch")]
    WrongId(u64),
    #[error("{0}")]
    BadSet(String),
    #[error("the set is unchanged")]
    Unchanged,
    #[error("{got} approvals from the current set, {quorum} needed")]
    TooFewApprovals { got: usize, quorum: usize },
    #[error("an approval is not from a current validator, repeats one, or names another change")]
    BadApproval,
    #[error("an approval's signature does not verify")]
    BadSignature,
}

/// Every validator key the consortium has had (the roster, by replica id), the endpoints
/// changes named for them, and the sets of each epoch, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epochs {
    roster: Vec<PublicKey>,
    /// By replica id, as the latest change that named it gave it (empty for genesis
    /// validators never rotated, whose hosts know them from their configuration).
    endpoints: Vec<Vec<u8>>,
    epochs: Vec<Membership>,
}

impl Epochs {
    /// Genesis: the replicas `0..keys.len()`.
    pub fn genesis(keys: Vec<PublicKey>) -> Self {
        let members = (0..keys.len()).map(|i| i as ReplicaId).collect();
        let endpoints = vec![Vec::new(); keys.len()];
        Self { roster: keys, endpoints, epochs: vec![Membership { epoch: 0, after_seq: 0, members }] }
    }

    /// Keys by replica id, of every validator the consortium has had.
    pub fn roster(&self) -> &[PublicKey] {
        &self.roster
    }

    /// How to reach validator `id`, as the latest change that named it gave it: the one
    /// that added it, or one that rotated its TLS certificate or address (empty for
    /// genesis validators never rotated, whose hosts know them from their configuration,
    /// or when the change named none).
    pub fn endpoint(&self, id: ReplicaId) -> &[u8] {
        self.endpoints.get(id as usize).map_or(&[], |e| e.as_slice())
    }

    /// Every epoch's set, oldest first.
    pub fn all(&self) -> &[Membership] {
        &self.epochs
    }

    /// The set that orders sequence number `seq` (and votes on the checkpoint at `seq`).
    pub fn governing(&self, seq: u64) -> &Membership {
        self.epochs.iter().rev().find(|m| m.after_seq < seq).unwrap_or(&self.epochs[0])
    }

    /// The newest set, in effect or scheduled.
    pub fn latest(&self) -> &Membership {
        self.epochs.last().expect("genesis is always there")
    }

    /// Executes a reconfiguration request committed at `seq`: checks it and schedules the
    /// new set after the first checkpoint (every `interval`) at or above `seq + span − 1`,
    /// which it returns.
    pub fn schedule(&mut self, request: &Request, seq: u64, span: u64, interval: u64) -> Result<u64, Refused> {
        let r = Reconfiguration::from_bytes(&request.payload).map_err(|e| Refused::Undecodable(e.to_string()))?;
        let latest = self.latest().clone();
        if latest.after_seq >= seq {
            return Err(Refused::Pending(latest.epoch));
        }
        let next = latest.epoch + 1;
        if r.epoch != next {
            return Err(Refused::WrongEpoch { got: r.epoch, next });
        }
        if request.id != r.epoch {
            return Err(Refused::WrongId(request.id));
        }
        let added = self.check_set(&r.members)?;
        let members: Vec<ReplicaId> = r.members.iter().map(|(id, _)| *id).collect();
        if members == latest.members && r.endpoints.is_empty() {
            return Err(Refused::Unchanged);
        }
        let first_new = self.roster.len() as ReplicaId;
        let named = r.endpoints.iter().map(|(id, _)| *id);
        if !named.clone().zip(named.skip(1)).all(|(a, b)| a < b)
            || r.endpoints.iter().any(|(id, _)| !members.contains(id))
        {
            return Err(Refused::BadSet("endpoints are named for validators of the next set only, once each".into()));
        }
        if r.endpoints.iter().any(|(id, e)| *id < first_new && (e.is_empty() || e == self.endpoint(*id))) {
            return Err(Refused::BadSet("a kept validator's new endpoint is empty or the one it has".into()));
        }
        let change = Reconfiguration::digest(r.epoch, &r.members, &r.endpoints);
        let mut senders = std::collections::BTreeSet::new();
        for a in &r.approvals {
            if !latest.contains(a.from) || !senders.insert(a.from) || a.body != (Approval { epoch: r.epoch, change }) {
                return Err(Refused::BadApproval);
            }
        }
        if senders.len() < latest.quorum() {
            return Err(Refused::TooFewApprovals { got: senders.len(), quorum: latest.quorum() });
        }
        let refs: Vec<_> = r.approvals.iter().collect();
        verify_all(&refs, &self.roster).map_err(|_| Refused::BadSignature)?;
        let after_seq = (seq + span - 1).div_ceil(interval) * interval;
        for (id, e) in r.endpoints.iter().filter(|(id, _)| *id < first_new) {
            self.endpoints[*id as usize] = e.clone();
        }
        for k in 0..added.len() {
            let id = first_new + k as ReplicaId;
            let endpoint = r.endpoints.iter().find(|(e, _)| *e == id).map(|(_, e)| e.clone());
            self.endpoints.push(endpoint.unwrap_or_default());
        }
        self.roster.extend(added);
        self.epochs.push(Membership { epoch: r.epoch, after_seq, members });
        Ok(after_seq)
    }

    /// A proposed set is at least [`MEMBERS_MIN`] strictly ascending ids; known ids keep
    /// their keys, new ids continue the roster in order with keys it does not hold yet.
    /// Returns the new ids' keys.
    fn check_set(&self, members: &[(ReplicaId, PublicKey)]) -> Result<Vec<PublicKey>, Refused> {
        let bad = |why: String| Err(Refused::BadSet(why));
        if members.len() < MEMBERS_MIN || members.len() > REPLICAS_MAX {
            return bad(format!("{} validators; a set has {MEMBERS_MIN}..={REPLICAS_MAX}", members.len()));
        }
        if members.windows(2).any(|w| w[0].0 >= w[1].0) {
            return bad("validator ids are not strictly ascending".into());
        }
        let mut added: Vec<PublicKey> = Vec::new();
        for (id, key) in members {
            let id = *id as usize;
            match self.roster.get(id) {
                Some(known) if known == key => {}
                Some(_) => return bad(format!("validator {id} keeps its key; a new key takes a new id")),
                None if id == self.roster.len() + added.len() => {
                    if self.roster.contains(key) || added.contains(key) {
                        return bad(format!("validator {id}'s key already belongs to another id"));
                    }
                    added.push(*key);
                }
                None => return bad(format!("new validator id {id} does not continue the roster")),
            }
        }
        if self.roster.len() + added.len() > REPLICAS_MAX {
            return bad(format!("the roster would exceed {REPLICAS_MAX} validators"));
        }
        Ok(added)
    }

    /// The persisted form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u32(&mut out, self.roster.len());
        for (k, e) in self.roster.iter().zip(&self.endpoints) {
            out.extend_from_slice(k.as_bytes());
            put_u32(&mut out, e.len());
            out.extend_from_slice(e);
        }
        put_u32(&mut out, self.epochs.len());
        for m in &self.epochs {
            put_u64(&mut out, m.epoch);
            put_u64(&mut out, m.after_seq);
            put_u32(&mut out, m.members.len());
            out.extend_from_slice(&m.members);
        }
        out
    }

    /// Reads the persisted form back, checking that it extends `genesis`.
    pub fn from_bytes(bytes: &[u8], genesis: &[PublicKey]) -> Result<Self, DecodeError> {
        let invalid = |reason: &str| DecodeError::Invalid { what: "membership", reason: reason.into() };
        let e = decode_whole(bytes, "membership", |r| {
            let listed = decode_list(r, "roster", REPLICAS_MAX, |r| {
                let key = PublicKey::from_raw(&r.array()?)?;
                let n = r.count("endpoint", ENDPOINT_LEN_MAX)?;
                Ok((key, r.take(n)?.to_vec()))
            })?;
            let (roster, endpoints) = listed.into_iter().unzip();
            let epochs = decode_list(r, "epochs", REPLICAS_MAX * 1024, |r| {
                let epoch = r.u64()?;
                let after_seq = r.u64()?;
                let n = r.count("members", REPLICAS_MAX)?;
                Ok(Membership { epoch, after_seq, members: r.take(n)?.to_vec() })
            })?;
            Ok(Self { roster, endpoints, epochs })
        })?;
        if !e.roster.starts_with(genesis) || e.epochs.first() != Some(&Self::genesis(genesis.to_vec()).epochs[0]) {
            return Err(invalid("does not extend this consortium's genesis validators"));
        }
        let ordered = e.epochs.windows(2).all(|w| w[1].epoch == w[0].epoch + 1 && w[1].after_seq > w[0].after_seq);
        let valid = e.epochs.iter().all(|m| {
            m.members.len() >= MEMBERS_MIN
                && m.members.windows(2).all(|w| w[0] < w[1])
                && m.members.iter().all(|id| (*id as usize) < e.roster.len())
        });
        if !ordered || !valid {
            return Err(invalid("epochs out of order or a set malformed"));
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    struct World {
        keys: Vec<SigningKeypair>,
        epochs: Epochs,
    }

    /// Four genesis validators and two more keys for joiners; L = 32, K = 8.
    fn world() -> World {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let keys: Vec<SigningKeypair> = (0..6).map(|_| SigningKeypair::generate(&mut rng)).collect();
        let epochs = Epochs::genesis(keys[..4].iter().map(|k| k.public()).collect());
        World { keys, epochs }
    }

    impl World {
        fn set(&self, ids: &[ReplicaId]) -> Vec<(ReplicaId, PublicKey)> {
            ids.iter().map(|id| (*id, self.keys[*id as usize].public())).collect()
        }
        fn change(&self, epoch: u64, ids: &[ReplicaId], approvers: &[ReplicaId]) -> Reconfiguration {
            let members = self.set(ids);
            let approvals = approvers
                .iter()
                .map(|a| Reconfiguration::approve(&self.keys[*a as usize], *a, epoch, &members, &[]))
                .collect();
            Reconfiguration { epoch, members, endpoints: vec![], approvals }
        }
        fn schedule(&mut self, r: &Reconfiguration, seq: u64) -> Result<u64, Refused> {
            self.epochs.schedule(&r.request(), seq, 32, 8)
        }
    }

    #[test]
    fn a_kept_validator_rotates_its_endpoint_in_place_by_quorum() {
        let mut w = world();
        let members = w.set(&[0, 1, 2, 3]);
        let rotate = |w: &World, endpoints: Vec<Endpoint>, approvers: &[ReplicaId]| {
            let approvals = approvers
                .iter()
                .map(|a| Reconfiguration::approve(&w.keys[*a as usize], *a, 1, &members, &endpoints))
                .collect();
            Reconfiguration { epoch: 1, members: members.clone(), endpoints, approvals }
        };
        // The same set with nothing named is no change; naming an id outside the next set,
        // an empty endpoint, or too few approvals is refused.
        assert_eq!(w.schedule(&rotate(&w, vec![], &[0, 1, 2]), 10), Err(Refused::Unchanged));
        let outside = rotate(&w, vec![(4, b"10.0.0.4:9400 and a certificate".to_vec())], &[0, 1, 2]);
        assert!(matches!(w.schedule(&outside, 10), Err(Refused::BadSet(_))));
        assert!(matches!(w.schedule(&rotate(&w, vec![(2, vec![])], &[0, 1, 2]), 10), Err(Refused::BadSet(_))));
        let new = b"127.0.0.1:9402 and the next certificate".to_vec();
        let two = rotate(&w, vec![(2, new.clone())], &[2, 3]);
        assert_eq!(w.schedule(&two, 10), Err(Refused::TooFewApprovals { got: 2, quorum: 3 }));
        // By a quorum: validator 2 keeps its id and key, its endpoint is the new one from the
        // change's execution, and the epoch (same set) governs after the boundary.
        assert_eq!(w.schedule(&rotate(&w, vec![(2, new.clone())], &[0, 2, 3]), 10), Ok(48));
        assert_eq!(w.epochs.endpoint(2), new.as_slice());
        assert_eq!(w.epochs.roster().len(), 4);
        assert_eq!(w.epochs.governing(49).members, vec![0, 1, 2, 3]);
        // Rotating to the endpoint it already has is refused.
        let approvals =
            [0u8, 1, 2].map(|a| Reconfiguration::approve(&w.keys[a as usize], a, 2, &members, &[(2, new.clone())]));
        let again = Reconfiguration {
            epoch: 2,
            members: members.clone(),
            endpoints: vec![(2, new)],
            approvals: approvals.to_vec(),
        };
        assert!(matches!(w.schedule(&again, 49), Err(Refused::BadSet(_))));
        // Persisted with the rotated endpoint.
        let genesis: Vec<PublicKey> = w.keys[..4].iter().map(|k| k.public()).collect();
        assert_eq!(Epochs::from_bytes(&w.epochs.to_bytes(), &genesis).unwrap(), w.epochs);
    }

    #[test]
    fn a_forwarded_change_is_ordered_only_with_approvals_that_verify() {
        use ForwardRefusal::{Forged, Unknown};
        let w = world();
        let roster: Vec<PublicKey> = w.keys[..4].iter().map(|k| k.public()).collect();
        let check = |r: &Reconfiguration| Reconfiguration::precheck_forwarded(&r.to_bytes(), &roster);
        let good = w.change(1, &[0, 1, 2, 3, 4], &[0, 1, 2]);
        assert_eq!(check(&good), Ok(()));
        assert!(matches!(Reconfiguration::precheck_forwarded(b"junk", &roster), Err(Forged(_))));
        assert!(matches!(check(&w.change(1, &[0, 1, 2, 3, 4], &[0, 1])), Err(Forged(_))), "two approvals");
        let mut repeated = good.clone();
        repeated.approvals[2] = repeated.approvals[0].clone();
        assert!(matches!(check(&repeated), Err(Forged(_))));
        let mut other = good.clone();
        other.members.pop(); // approvals of another set
        assert!(matches!(check(&other), Err(Forged(_))));
        let mut forged = good.clone();
        forged.approvals[1].from = 3; // validator 1's signature under validator 3's id
        assert!(matches!(check(&forged), Err(Forged(_))));
        // An approver beyond this replica's roster: not provably forged, its roster may lag.
        let ahead = w.change(1, &[0, 1, 2, 3, 4], &[0, 1, 4]);
        assert!(matches!(check(&ahead), Err(Unknown(_))));
    }

    #[test]
    fn a_change_approved_by_a_quorum_governs_after_the_checkpoint_one_window_on() {
        let mut w = world();
        let members = w.set(&[0, 1, 2, 3, 4]);
        let endpoints = vec![(4, b"127.0.0.1:9400 and a certificate".to_vec())];
        let approvals =
            [0u8, 1, 3].map(|a| Reconfiguration::approve(&w.keys[a as usize], a, 1, &members, &endpoints)).to_vec();
        // Endpoints only for the validators a change adds.
        let mut misnamed = Reconfiguration { epoch: 1, members, endpoints, approvals };
        misnamed.endpoints[0].0 = 9;
        assert!(matches!(w.schedule(&misnamed, 10), Err(Refused::BadSet(_))));
        // Approvals cover the endpoint: nobody redirects the new validator.
        let mut redirected = misnamed.clone();
        redirected.endpoints[0] = (4, b"10.0.0.66:9400".to_vec());
        assert_eq!(w.schedule(&redirected, 10), Err(Refused::BadApproval));
        let mut add = misnamed;
        add.endpoints[0].0 = 4;
        // s = 10: the first checkpoint at or above 10 + 32 − 1 = 41 is 48.
        assert_eq!(w.schedule(&add, 10), Ok(48));
        assert_eq!(w.epochs.endpoint(4), b"127.0.0.1:9400 and a certificate");
        assert!(w.epochs.endpoint(0).is_empty());
        assert_eq!(w.epochs.governing(48).epoch, 0);
        assert_eq!(w.epochs.governing(49).epoch, 1);
        assert_eq!(w.epochs.governing(49).members, vec![0, 1, 2, 3, 4]);
        assert_eq!(w.epochs.roster().len(), 5);
        // n = 5 still tolerates one fault, with quorums of 4 (two quorums of 3 would meet
        // in one validator, which may be the faulty one); the primary rotates over the new
        // set.
        let m = w.epochs.latest();
        assert_eq!((m.f(), m.quorum(), m.prepares_needed(), m.primary(4), m.primary(5)), (1, 4, 3, 4, 0));
        for (n, f, q) in [(4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (8, 2, 6), (10, 3, 7), (31, 10, 21)] {
            let set = Membership { epoch: 0, after_seq: 0, members: (0..n as u8).collect() };
            assert_eq!((set.f(), set.quorum()), (f, q), "n = {n}");
            // Two quorums share more than f; n − f make a quorum.
            assert!(2 * q - n > f && n - f >= q, "n = {n}");
        }
        // A change while one is pending is refused; after the boundary, the next set may
        // drop a validator (its id stays in the roster, never reused).
        let remove = w.change(2, &[1, 2, 3, 4], &[1, 2, 4, 0]);
        assert_eq!(w.schedule(&remove, 40), Err(Refused::Pending(1)));
        // Three approvals of five were a quorum under 2f + 1; they are not: 4 are needed.
        let three = w.change(2, &[1, 2, 3, 4], &[1, 2, 4]);
        assert_eq!(w.schedule(&three, 49), Err(Refused::TooFewApprovals { got: 3, quorum: 4 }));
        assert_eq!(w.schedule(&remove, 49), Ok(80));
        assert_eq!(w.epochs.governing(81).members, vec![1, 2, 3, 4]);
        assert_eq!(w.epochs.roster().len(), 5);
        // Persisted and read back against the same genesis; another genesis refuses it.
        let bytes = w.epochs.to_bytes();
        let genesis: Vec<PublicKey> = w.keys[..4].iter().map(|k| k.public()).collect();
        assert_eq!(Epochs::from_bytes(&bytes, &genesis).unwrap(), w.epochs);
        let other: Vec<PublicKey> = w.keys[1..5].iter().map(|k| k.public()).collect();
        assert!(Epochs::from_bytes(&bytes, &other).is_err());
        assert!(Epochs::from_bytes(&bytes[..bytes.len() - 1], &genesis).is_err());
    }

    #[test]
    fn changes_without_a_quorum_or_with_a_malformed_set_are_refused() {
        let mut w = world();
        let too_few = w.change(1, &[0, 1, 2, 3, 4], &[0, 1]);
        assert_eq!(w.schedule(&too_few, 5), Err(Refused::TooFewApprovals { got: 2, quorum: 3 }));
        // The joiner's own approval does not count: it is not in the current set.
        let outsider = w.change(1, &[0, 1, 2, 3, 4], &[0, 1, 4]);
        assert_eq!(w.schedule(&outsider, 5), Err(Refused::BadApproval));
        // Approvals of another set, or repeated, or for another epoch.
        let mut swapped = w.change(1, &[0, 1, 2, 3, 4], &[0, 1, 2]);
        swapped.members = w.set(&[1, 2, 3, 4]);
        assert_eq!(w.schedule(&swapped, 5), Err(Refused::BadApproval));
        let twice = w.change(1, &[0, 1, 2, 3, 4], &[0, 0, 1, 2]);
        assert_eq!(w.schedule(&twice, 5), Err(Refused::BadApproval));
        // A forged signature.
        let mut forged = w.change(1, &[0, 1, 2, 3, 4], &[0, 1, 2]);
        forged.approvals[2] = Signed::sign(&w.keys[4], 2, forged.approvals[2].body);
        assert_eq!(w.schedule(&forged, 5), Err(Refused::BadSignature));
        // Epochs in order, the request number is the epoch.
        let skip = w.change(2, &[0, 1, 2, 3, 4], &[0, 1, 2]);
        assert_eq!(w.schedule(&skip, 5), Err(Refused::WrongEpoch { got: 2, next: 1 }));
        let good = w.change(1, &[0, 1, 2, 3, 4], &[0, 1, 2]);
        let mut renumbered = good.request();
        renumbered.id = 7;
        assert_eq!(w.epochs.schedule(&renumbered, 5, 32, 8), Err(Refused::WrongId(7)));
        // Malformed sets.
        let refused = |w: &mut World, members: Vec<(ReplicaId, PublicKey)>| {
            let change = Reconfiguration::digest(1, &members, &[]);
            let approvals =
                (0..3).map(|a| Signed::sign(&w.keys[a as usize], a, Approval { epoch: 1, change })).collect();
            w.schedule(&Reconfiguration { epoch: 1, members, endpoints: vec![], approvals }, 5)
        };
        let set = w.set(&[0, 1, 2]);
        assert!(matches!(refused(&mut w, set), Err(Refused::BadSet(_))), "below four");
        let set = w.set(&[0, 2, 1, 3]);
        assert!(matches!(refused(&mut w, set), Err(Refused::BadSet(_))), "not ascending");
        let set = w.set(&[0, 1, 2, 3, 5]);
        assert!(matches!(refused(&mut w, set), Err(Refused::BadSet(_))), "an id gap");
        let mut rekeyed = w.set(&[0, 1, 2, 3]);
        rekeyed[3].1 = w.keys[4].public();
        assert!(matches!(refused(&mut w, rekeyed), Err(Refused::BadSet(_))), "a known id with another key");
        let mut reused = w.set(&[0, 1, 2, 3, 4]);
        reused[4].1 = w.keys[0].public();
        assert!(matches!(refused(&mut w, reused), Err(Refused::BadSet(_))), "a known key under a new id");
        let same = w.set(&[0, 1, 2, 3]);
        assert_eq!(refused(&mut w, same), Err(Refused::Unchanged));
        // Garbage never reaches a panic.
        let garbage = Request { client: RECONFIGURE_CLIENT, id: 1, payload: vec![0xff; 40] };
        assert!(matches!(w.epochs.schedule(&garbage, 5, 32, 8), Err(Refused::Undecodable(_))));
        // Nothing refused changed anything.
        assert_eq!(w.epochs, world().epochs);
        assert_eq!(w.schedule(&good, 5), Ok(40));
    }
}
