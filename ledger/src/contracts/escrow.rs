//! `escrow`: the audit authorities make the escrow key on chain, so that no machine ever
//! holds its secret (issue 17 item 3: "a quorum of audit authorities … can open it, and no
//! single authority can").
//!
//! The protocol is Pedersen's joint-Feldman DKG with complaints answered by revealing the
//! disputed share, as Gennaro, Jarecki, Krawczyk and Rabin describe it ("Secure
//! distributed key generation for discrete-log based cryptosystems", J. Cryptology 2007,
//! §2, the "JF-DKG" baseline); the cryptography is `dualchain_prover::escrow`. The ledger
//! is the broadcast channel, and private channels are IBE ciphertexts on it:
//! 1. each authority posts its dealing (Feldman commitments to a random polynomial of
//!    degree t − 1) and its share for each authority, sealed to that authority's IBE
//!    identity ([`deal`]);
//! 2. an authority whose share does not open or does not match the dealing complains
//!    ([`complain`]); the dealer answers by revealing that share, which everyone checks
//!    against the dealing ([`reveal`]): a matching share clears the dealer (and is then
//!    the recipient's), a complaint left unanswered disqualifies it;
//! 3. each authority, once every dealing is on chain and its share of each verified (or
//!    revealed after its complaint), acknowledges them ([`ack`]);
//! 4. any authority closes the DKG once every authority dealt and acknowledged and no
//!    complaint is open, or once twice [`DKG_WINDOW_MS`] passed since the first dealing
//!    ([`close`]): dealings are taken for one window, complaints and answers for at least
//!    one more, so an authority that never deals or never acknowledges cannot stall it.
//!    The key is the sum over the qualified dealers; at least t must qualify.
//!
//! Two checks make the last dealer harmless. It sees every other dealing before its own
//! and could post commitments whose sum is a key it chose (a "rogue key"). Its dealing
//! must prove knowledge of its secret (a Schnorr proof bound to the dealer and the
//! committee, checked by [`deal`] through `Dealing::check`), and a commitment computed
//! from the others' has no discrete log it knows, so the dealing is refused at once. And
//! shares that do not match a dealer's commitments draw complaints instead of
//! acknowledgements; the DKG cannot close before the complaints are answered or the
//! window is out, and an unanswered complaint disqualifies the dealer. So the secret stays
//! unknown to anyone who holds fewer than t authorities' shares as long as one qualified
//! dealer is honest. GJKR show that an adversary can bias the public key
//! of JF-DKG; for ElGamal-type encryption under the key that bias does not help it (their
//! §4 and the analysis of "Secure applications of Pedersen's distributed key generation
//! protocol", CT-RSA 2003), which is all the key is used for here.

use dualchain_crypto::ibe::IbeCiphertext;
use dualchain_crypto::Codec;
use dualchain_prover::escrow::{Committee, Dealing, DkgShare, EscrowKey};

use super::context::{reject, reject_because, Ctx, Exec};
use crate::error::LedgerError;
use crate::genesis::{Escrow, Genesis};
use crate::reason::Reason;
use crate::state::{
    escrow_ack_key, escrow_complaint_key, escrow_dealing_key, ComplaintRecord, DealingRecord, EscrowKeyRecord, Overlay,
    ESCROW_ACK_PREFIX, ESCROW_COMPLAINT_PREFIX, ESCROW_DEALING_PREFIX, ESCROW_KEY,
};

/// Dealings are taken for this long (ledger time) from the first; twice this long after
/// it, the DKG closes with whoever qualified. A day.
pub const DKG_WINDOW_MS: u64 = 24 * 3_600_000;
/// Largest sealed share (an IBE ciphertext of a 37-byte share).
pub const SEALED_SHARE_LEN_MAX: usize = 1024;

/// The escrow key the anonymous path seals under: fixed at genesis, or formed on chain.
/// `None` while the DKG runs, or where genesis opened no anonymous path.
pub fn key(state: &Overlay<'_>, genesis: &Genesis) -> Result<Option<EscrowKey>, LedgerError> {
    match genesis.anonymous.as_ref().map(|a| &a.escrow) {
        None => Ok(None),
        Some(Escrow::Fixed(k)) => Ok(Some(k.clone())),
        Some(Escrow::Committee { .. }) => match state.get::<EscrowKeyRecord>(ESCROW_KEY)? {
            None => Ok(None),
            Some(r) => EscrowKey::from_bytes(&r.key).map(Some).map_err(|e| LedgerError::Corrupt(e.to_string())),
        },
    }
}

/// The committee of an on-chain DKG and the sender's index in it, while the DKG runs.
fn committee_and_index(ctx: &Ctx<'_, '_>) -> Result<(Committee, Vec<String>, u16), super::Refusal> {
    let found = authority(ctx)?;
    if ctx.state.get::<EscrowKeyRecord>(ESCROW_KEY)?.is_some() {
        return reject(Reason::EscrowKeyFormed);
    }
    Ok(found)
}

/// The committee of an on-chain DKG, its members and the sender's index in it.
pub(super) fn authority(ctx: &Ctx<'_, '_>) -> Result<(Committee, Vec<String>, u16), super::Refusal> {
    let Some(Escrow::Committee { members, threshold }) = ctx.genesis.anonymous.as_ref().map(|a| &a.escrow) else {
        return reject(Reason::NotAuditAuthority);
    };
    let sender = &ctx.sender()?.id;
    let Some(position) = members.iter().position(|m| m == sender) else {
        return reject(Reason::NotAuditAuthority);
    };
    let committee = Committee::new(*threshold, members.len() as u16)
        .map_err(|e| super::Refusal::Fatal(LedgerError::Corrupt(format!("genesis' audit committee: {e}"))))?;
    Ok((committee, members.clone(), position as u16 + 1))
}

fn dealing_of(ctx: &Ctx<'_, '_>, dealer: u16) -> Result<(DealingRecord, Dealing), super::Refusal> {
    let Some(rec) = ctx.state.get::<DealingRecord>(&escrow_dealing_key(dealer))? else {
        return reject(Reason::UnknownDealing { dealer });
    };
    let dealing =
        Dealing::from_bytes(&rec.dealing).map_err(|e| super::Refusal::Fatal(LedgerError::Corrupt(e.to_string())))?;
    Ok((rec, dealing))
}

/// Step 1: an authority's dealing and its sealed shares.
pub fn deal(ctx: &mut Ctx<'_, '_>, dealing: &[u8], sealed_shares: &[Vec<u8>]) -> Exec {
    let (committee, members, index) = committee_and_index(ctx)?;
    if ctx.state.get::<DealingRecord>(&escrow_dealing_key(index))?.is_some() {
        return reject(Reason::EscrowAlreadyDealt);
    }
    let first = dealings(ctx.state)?.iter().map(|d| d.at_ms).min();
    if first.is_some_and(|t| ctx.time_ms.saturating_sub(t) >= DKG_WINDOW_MS) {
        return reject(Reason::EscrowDealingLate { window_h: (DKG_WINDOW_MS / 3_600_000) as u32 });
    }
    let d = match Dealing::from_bytes(dealing) {
        Ok(d) => d,
        Err(e) => return reject_because(Reason::EscrowDealingInvalid, e),
    };
    if d.dealer() != index {
        return reject_because(Reason::EscrowDealingInvalid, format!("dealt as authority {}, is {index}", d.dealer()));
    }
    if let Err(e) = d.check(&committee) {
        return reject_because(Reason::EscrowDealingInvalid, e);
    }
    for (k, member) in members.iter().enumerate() {
        let recipient = k as u16 + 1;
        let Some(sealed) = sealed_shares.get(k) else { return reject(Reason::SealedShareInvalid { recipient }) };
        if sealed.len() > SEALED_SHARE_LEN_MAX {
            return reject_because(Reason::SealedShareInvalid { recipient }, "too long");
        }
        match IbeCiphertext::from_bytes(sealed) {
            Ok(c) if c.identity == *member => {}
            Ok(c) => {
                return reject_because(Reason::SealedShareInvalid { recipient }, format!("sealed to {}", c.identity))
            }
            Err(e) => return reject_because(Reason::SealedShareInvalid { recipient }, e),
        }
    }
    if sealed_shares.len() != members.len() {
        return reject_because(
            Reason::SealedShareInvalid { recipient: members.len() as u16 + 1 },
            format!("{} sealed shares for {} authorities", sealed_shares.len(), members.len()),
        );
    }
    let rec = DealingRecord {
        dealer: index,
        member: members[usize::from(index) - 1].clone(),
        dealing: dealing.to_vec(),
        sealed_shares: sealed_shares.to_vec(),
        at_ms: ctx.time_ms,
    };
    ctx.state.put(escrow_dealing_key(index), &rec);
    Ok(())
}

/// Step 2: the sender accuses `dealer` of a bad share.
pub fn complain(ctx: &mut Ctx<'_, '_>, dealer: u16) -> Exec {
    let (_, _, index) = committee_and_index(ctx)?;
    dealing_of(ctx, dealer)?;
    let key = escrow_complaint_key(dealer, index);
    if ctx.state.get::<ComplaintRecord>(&key)?.is_some() {
        return reject(Reason::ComplaintExists);
    }
    ctx.state.put(key, &ComplaintRecord { dealer, recipient: index, at_ms: ctx.time_ms, revealed: None });
    Ok(())
}

/// Step 2, the answer: the accused dealer (the sender) reveals the share it owed
/// `recipient`; it must match its dealing.
pub fn reveal(ctx: &mut Ctx<'_, '_>, recipient: u16, share: &[u8]) -> Exec {
    let (_, _, index) = committee_and_index(ctx)?;
    let key = escrow_complaint_key(index, recipient);
    let Some(mut complaint) = ctx.state.get::<ComplaintRecord>(&key)?.filter(|c| c.revealed.is_none()) else {
        return reject(Reason::UnknownComplaint);
    };
    let (_, dealing) = dealing_of(ctx, index)?;
    let s = match DkgShare::from_bytes(share) {
        Ok(s) => s,
        Err(e) => return reject_because(Reason::RevealInvalid, e),
    };
    if s.recipient() != recipient {
        return reject_because(Reason::RevealInvalid, format!("a share for authority {}", s.recipient()));
    }
    if let Err(e) = dealing.verify_share(&s) {
        return reject_because(Reason::RevealInvalid, e);
    }
    complaint.revealed = Some(share.to_vec());
    ctx.state.put(key, &complaint);
    Ok(())
}

/// Step 3: the sender checked its share of every dealing.
pub fn ack(ctx: &mut Ctx<'_, '_>) -> Exec {
    let (_, members, index) = committee_and_index(ctx)?;
    if ctx.state.get::<(u16, u64)>(&escrow_ack_key(index))?.is_some() {
        return reject(Reason::EscrowAlreadyAcked);
    }
    let dealt = dealings(ctx.state)?.len();
    let own_open = complaints(ctx.state)?.iter().any(|c| c.recipient == index && c.revealed.is_none());
    if dealt < members.len() || own_open {
        return reject_because(Reason::EscrowAckEarly, format!("{dealt} of {} dealt", members.len()));
    }
    ctx.state.put(escrow_ack_key(index), &(index, ctx.time_ms));
    Ok(())
}

/// Step 4: the key from the qualified dealings.
pub fn close(ctx: &mut Ctx<'_, '_>) -> Exec {
    let (committee, members, _) = committee_and_index(ctx)?;
    let dealings = dealings(ctx.state)?;
    let complaints = complaints(ctx.state)?;
    let acks = acks(ctx.state)?.len();
    let open = |dealer: u16| complaints.iter().any(|c| c.dealer == dealer && c.revealed.is_none());
    let first = dealings.iter().map(|d| d.at_ms).min();
    let none_open = !complaints.iter().any(|c| c.revealed.is_none());
    let everyone = dealings.len() == members.len() && acks == members.len() && none_open;
    let window = first.is_some_and(|t| ctx.time_ms.saturating_sub(t) >= 2 * DKG_WINDOW_MS);
    if !everyone && !window {
        return reject(Reason::EscrowNotClosable { window_h: (2 * DKG_WINDOW_MS / 3_600_000) as u32 });
    }
    let mut qualified = Vec::new();
    let mut parts = Vec::new();
    for d in dealings.iter().filter(|d| !open(d.dealer)) {
        let dealing = Dealing::from_bytes(&d.dealing).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        qualified.push(d.dealer);
        parts.push(dealing);
    }
    if qualified.len() < usize::from(committee.threshold()) {
        return reject(Reason::EscrowTooFewDealers {
            qualified: qualified.len() as u16,
            threshold: committee.threshold(),
        });
    }
    let key = match EscrowKey::from_dealings(&committee, &parts) {
        Ok(k) => k,
        // Qualified dealings that cancel out: no key from them.
        Err(e) => {
            let qualified = qualified.len() as u16;
            return reject_because(Reason::EscrowTooFewDealers { qualified, threshold: committee.threshold() }, e);
        }
    };
    ctx.state.put(ESCROW_KEY.to_vec(), &EscrowKeyRecord { key: key.to_bytes(), qualified, at_ms: ctx.time_ms });
    Ok(())
}

/// The authorities that acknowledged their shares, by index.
pub fn acks(state: &Overlay<'_>) -> Result<Vec<u16>, LedgerError> {
    Ok(state.prefix::<(u16, u64)>(ESCROW_ACK_PREFIX)?.into_iter().map(|(i, _)| i).collect())
}

/// Every dealing on chain, by dealer.
pub fn dealings(state: &Overlay<'_>) -> Result<Vec<DealingRecord>, LedgerError> {
    state.prefix(ESCROW_DEALING_PREFIX)
}

/// Every complaint on chain, by dealer and recipient.
pub fn complaints(state: &Overlay<'_>) -> Result<Vec<ComplaintRecord>, LedgerError> {
    state.prefix(ESCROW_COMPLAINT_PREFIX)
}
