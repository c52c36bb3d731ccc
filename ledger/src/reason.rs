//! Why the ledger refused a transaction: an enumerated code with structured fields.
//!
//! A block's Merkle leaves hash each entry's outcome, so whatever an outcome holds must be
//! the same on every validator, byte for byte, whatever the library versions or the
//! wording of a message. An outcome therefore holds only a [`Reason`]: a code from this
//! closed list and fields taken from the transaction or the state (member ids, limits,
//! counts), never the text of an error. The human sentence is [`Reason`]'s `Display`,
//! computed from the code when it is shown; the text of the underlying error, where there
//! is one (why a certificate or a policy did not parse), travels beside the block as a
//! note that no hash covers (`Block::notes`), so a validator whose serde or
//! parser words it differently still builds the same block.
//!
//! Codes are `snake_case` in JSON (`{"code": "unknown_member", "member": "lab-9"}`);
//! adding a code is a ledger format change, as adding a transaction kind is.

use std::fmt;

use dualchain_crypto::error::CertificateProblem;
use serde::{Deserialize, Serialize};

/// Why a transaction was refused (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reason {
    // ---- the bytes ----
    /// The payload is not a transaction; `part` says which layer failed.
    Undecodable {
        part: TxPart,
    },
    /// The same transaction is already on the ledger or earlier in the batch.
    Duplicate,

    // ---- the sender ----
    UnknownMember {
        member: String,
    },
    MemberRevoked {
        member: String,
        revocation: String,
    },
    CertificateExpired {
        member: String,
    },
    /// The signature does not verify with the sender's registered (or certified) key.
    BadSignature,
    CertificateOfOther {
        subject: String,
        sender: String,
    },
    CertificateUndecodable,
    CertificateRefused {
        problem: CertProblem,
    },
    RoleRequired {
        roles: Vec<String>,
        member: String,
        role: String,
    },
    /// A name or reason that is empty, too long or not printable.
    TextInvalid {
        field: TextField,
        max: usize,
    },

    // ---- registry ----
    SerialNotHigher {
        member: String,
        registered: u64,
    },
    CredentialLeafZero,
    CredentialLeafInvalid,
    NoActiveCredential {
        member: String,
    },
    MemberAlreadyRevoked {
        member: String,
    },
    RevocationAlreadyApproved {
        member: String,
        by: String,
    },
    /// A member not named at genesis is admitted by `AdmitMember` approvals: its
    /// registration of this certificate is open already.
    AdmissionPending {
        member: String,
    },
    /// No admission of the member is open: its own `RegisterMember` opens one.
    /// A parameter change that changes nothing.
    ParametersUnchanged,
    /// A proposed parameter outside what the ledger accepts (`max` for the membership
    /// quorum: the members in good standing, so that the consortium can always decide).
    ParameterOutOfRange {
        parameter: String,
        min: u64,
        max: u64,
    },
    ParametersAlreadyApproved {
        by: String,
    },
    UnknownAdmission {
        member: String,
    },
    /// The approval names another certificate than the one the admission is for.
    AdmissionCertificateDiffers {
        member: String,
    },
    AdmissionAlreadyApproved {
        member: String,
        by: String,
    },
    MemberAlreadyRegistered {
        member: String,
    },

    // ---- datasets ----
    DatasetIdZero,
    DatasetExists,
    /// The capacity is not one of the supply circuit's shapes.
    CapacityNotAShape {
        capacity: u64,
        max: u64,
    },
    AbeIndexTooLarge {
        max: usize,
    },
    NotActiveCpc {
        cpc: String,
    },
    UnknownCpc {
        cpc: String,
    },
    CommitmentInvalid,
    AbePolicyTooLong {
        max: usize,
    },
    AbePolicyInvalid,
    AbeIndexInvalid,
    ZkPolicyInvalid,
    /// The index is encrypted under another CP-ABE policy than the statement's.
    AbeIndexPolicyDiffers,
    /// The dataset was erased by its owner.
    DatasetErased,
    /// The zero-knowledge policy hash is not the hash of the statement's DNF.
    ZkPolicyDiffers,

    // ---- demands, supply and access ----
    DemandIdUsed,
    UnknownDataset,
    RequirementInvalid,
    /// A dataset's disclosure policy is out of bounds.
    DisclosureInvalid,
    /// The demand's threshold is below the dataset's cohort minimum.
    CohortTooSmall {
        min: u16,
    },
    /// The demand's value range is narrower than the dataset allows.
    ValueSpanTooNarrow {
        min: u32,
    },
    /// The demand's time window is narrower than the dataset allows.
    TimeWindowTooNarrow {
        min_minutes: u32,
    },
    /// The requester spent its demands on the dataset for this epoch.
    DemandBudgetSpent {
        budget: u16,
        epoch_h: u32,
    },
    UnknownDemand,
    DemandDatasetUnknown,
    NotDatasetOwner {
        owner: String,
    },
    DemandAlreadyProven,
    SupplyProofRefused {
        proof: ProofFault,
    },
    RequestIdUsed,
    NotYourDemand {
        requester: String,
    },
    SupplyNotProven,
    DurationOutOfRange {
        max: u64,
    },
    /// The request was decided against: the denial is recorded as state.
    AccessDenied {
        denial: Denial,
    },

    // ---- grants ----
    UnknownGrant,
    NotGrantOwner {
        owner: String,
    },
    GrantRevoked {
        revocation: String,
    },
    GrantExpired,
    RekeyAlreadyIssued,
    SealedTokenTooLarge {
        max: usize,
    },
    SealedTokenInvalid,
    SealedPseudonymsTooLarge {
        max: usize,
    },
    /// Not an IBE ciphertext, or sealed to someone other than the grant's requester.
    SealedPseudonymsInvalid,
    NotGrantParty,
    GrantAlreadyRevoked,
    NotGrantCpc {
        cpc: String,
    },
    NoRekey,
    GrantDatasetUnknown,
    ReceiptRecordsOutOfRange {
        records: u64,
        capacity: u64,
    },

    // ---- break-glass ----
    /// The purpose of use is not one break-glass serves.
    PurposeUnsupported {
        allowed: Vec<String>,
    },
    /// The owner named is not another active hospital.
    BreakGlassOwnerInvalid {
        owner: String,
    },
    SealedScopeTooLarge {
        max: usize,
    },
    /// Not an IBE ciphertext, or sealed to someone other than the owner.
    SealedScopeInvalid,
    /// The clinician has this many break-glass uses awaiting review.
    BreakGlassUnreviewed {
        max: u16,
    },
    UnknownBreakGlass,
    NotBreakGlassOwner {
        owner: String,
    },
    BreakGlassExpired,
    BreakGlassReviewed,
    BreakGlassGrantsSpent {
        max: usize,
    },
    GrantIdUsed,
    /// Not an IBE ciphertext, or sealed to someone other than the requester.
    SealedPointerInvalid,
    /// Only an unjustified use can ask for the clinician's credential to be withdrawn.
    RevocationOfJustified,

    // ---- consent ----
    /// A consent commitment is not a field element.
    ConsentCommitmentInvalid,
    /// A `CommitConsent` names no dataset, or more than `max`.
    ConsentCommitmentsOutOfRange {
        max: usize,
    },
    /// A `CommitConsent` names a dataset twice.
    ConsentDatasetRepeated,

    // ---- the anonymous path ----
    /// The consortium opened no anonymous path, or its escrow key is not formed yet.
    AnonymousPathClosed,
    /// The sender looks like a pseudonym but names no one-time key.
    PseudonymInvalid,
    /// This one-time key already made a demand (one demand per pseudonym).
    PseudonymUsed,
    /// A pseudonym that made no demand sends something else.
    UnknownPseudonym,
    /// A pseudonym demands, requests access to its demand and revokes its grant; nothing else.
    PseudonymNotAllowed,
    /// The nullifier is not a field element.
    NullifierInvalid,
    /// The credential already spent this nullifier: its budget for the dataset and epoch
    /// is used, or the demand is a replay.
    NullifierSpent,
    /// The sealed identity is not an escrow ciphertext.
    SealedIdentityInvalid,
    /// The one-time delegating key is not a delegating public key.
    DelegatingKeyInvalid,
    /// The credential root an anonymous demand names is not one proofs may name now.
    CredentialRootRefused {
        denial: Denial,
    },
    /// The anonymous policy proof was not accepted.
    AnonymousProofRefused {
        proof: ProofFault,
    },
    /// A named demand of a member whose credential has an anonymous leaf carries no
    /// nullifier: its named and anonymous demands share one budget.
    DemandNullifierRequired,
    /// A named demand carries a nullifier, but its member's credential has no anonymous
    /// leaf (or the consortium no anonymous path) to prove it against.
    DemandNullifierUnexpected,
    /// The named demand's nullifier proof was not accepted.
    DemandNullifierRefused {
        proof: ProofFault,
    },

    // ---- the escrow DKG ----
    /// The sender is not one of genesis' audit authorities (or genesis fixed the key).
    NotAuditAuthority,
    /// The escrow key is formed: the DKG takes nothing more.
    EscrowKeyFormed,
    /// The dealing does not decode, is not the sender's, or does not fit the committee.
    EscrowDealingInvalid,
    EscrowAlreadyDealt,
    /// A sealed share is missing, does not decode or is sealed to another identity.
    SealedShareInvalid {
        recipient: u16,
    },
    /// No dealing of this authority (or no such authority).
    UnknownDealing {
        dealer: u16,
    },
    ComplaintExists,
    /// No open complaint of this recipient against the sender.
    UnknownComplaint,
    /// The revealed share does not decode or does not match the dealing.
    RevealInvalid,
    /// The DKG closes when every authority dealt and acknowledged its shares and no
    /// complaint is open, or once `window_h` hours passed since the first dealing.
    EscrowNotClosable {
        window_h: u32,
    },
    /// Dealings are taken for `window_h` hours from the first one; this came after.
    EscrowDealingLate {
        window_h: u32,
    },
    /// An acknowledgement needs every authority's dealing on chain and none of the
    /// sender's complaints open.
    EscrowAckEarly,
    EscrowAlreadyAcked,
    /// A pseudonym is granted once: its demand's nullifier buys one grant.
    PseudonymGranted,
    /// Too few dealers qualify (a dealing with an unanswered complaint does not).
    EscrowTooFewDealers {
        qualified: u16,
        threshold: u16,
    },

    // ---- audit cases ----
    AuditAlreadyApproved {
        by: String,
    },
    AuditCaseUnknown,
    /// The membership quorum has not approved the case yet.
    AuditCaseNotApproved,
    /// The case is opened: it takes no more shares.
    AuditCaseOpened,
    /// The share does not decode, is not the sender's, or does not verify for the case.
    AuditShareInvalid,
    AuditShareDuplicate,
}

/// Which layer of a payload failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxPart {
    /// Longer than a transaction may be.
    TooLong,
    Empty,
    Version,
    /// The length-prefixed body and signature do not fill the payload exactly.
    Framing,
    /// The body is not a transaction's JSON.
    Body,
}

/// What is wrong with a member certificate (the codes of
/// [`dualchain_crypto::error::CertificateProblem`], without their numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertProblem {
    UnknownIssuer,
    BadSignature,
    NotYetValid,
    Expired,
    Revoked,
    WrongRole,
    AttributeMismatch,
    WrongSubject,
    /// The certificate check failed for a reason that is not about the certificate.
    Other,
}

impl From<&CertificateProblem> for CertProblem {
    fn from(p: &CertificateProblem) -> Self {
        match p {
            CertificateProblem::UnknownIssuer => Self::UnknownIssuer,
            CertificateProblem::BadSignature => Self::BadSignature,
            CertificateProblem::NotYetValid { .. } => Self::NotYetValid,
            CertificateProblem::Expired { .. } => Self::Expired,
            CertificateProblem::Revoked => Self::Revoked,
            CertificateProblem::WrongRole { .. } => Self::WrongRole,
            CertificateProblem::AttributeMismatch => Self::AttributeMismatch,
            CertificateProblem::WrongSubject { .. } => Self::WrongSubject,
        }
    }
}

/// Which checked text field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextField {
    DatasetName,
    MemberId,
    Reason,
}

/// Why a proof was not accepted (the batch verifier's verdict on one transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProofFault {
    /// The proof does not verify for the statement the ledger derives.
    Invalid,
    Undecodable,
    /// The sender sent more proofs in the batch than one member may have verified.
    OverBudget {
        max: usize,
    },
    NoVerifyingKey,
    /// The verifier refused the statement's shape (number of public inputs).
    StatementShape,
    /// The proof names a demand or dataset unknown before this batch.
    StatementUnknown,
}

/// Why a request for access was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case", deny_unknown_fields)]
pub enum Denial {
    RootUnknown,
    RootPredatesRevocation,
    RootStale,
    PolicyProof { proof: ProofFault },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reason::*;
        match self {
            Undecodable { part } => write!(f, "the payload is not a transaction ({part})"),
            Duplicate => f.write_str("duplicate transaction"),
            UnknownMember { member } => write!(f, "unknown member {member}"),
            MemberRevoked { member, revocation } => write!(f, "member {member} is revoked ({revocation})"),
            CertificateExpired { member } => write!(f, "member {member}'s certificate expired"),
            BadSignature => f.write_str("signature does not verify"),
            CertificateOfOther { subject, sender } => {
                write!(f, "the certificate is {subject}'s, the sender is {sender}")
            }
            CertificateUndecodable => f.write_str("certificate does not decode"),
            CertificateRefused { problem } => write!(f, "certificate refused: {problem}"),
            RoleRequired { roles, member, role } => {
                write!(f, "this transaction needs role {}; {member} is {role}", roles.join(" or "))
            }
            TextInvalid { field, max } => write!(f, "{field} must be 1..={max} printable characters"),
            SerialNotHigher { member, registered } => {
                write!(f, "member {member} is registered with serial {registered}; a renewal needs a higher one")
            }
            CredentialLeafZero => f.write_str("a credential leaf cannot be zero"),
            CredentialLeafInvalid => f.write_str("the credential leaf is not a field element"),
            NoActiveCredential { member } => write!(f, "member {member} holds no active credential"),
            MemberAlreadyRevoked { member } => write!(f, "member {member} is already revoked"),
            RevocationAlreadyApproved { member, by } => {
                write!(f, "{by} already approved the revocation of member {member}")
            }
            AdmissionPending { member } => {
                write!(f, "the admission of {member} with this certificate awaits the members' approvals")
            }
            ParametersUnchanged => write!(f, "the proposed parameters are the ones in effect"),
            ParameterOutOfRange { parameter, min, max } => {
                write!(f, "{parameter} must be in {min}..={max}")
            }
            ParametersAlreadyApproved { by } => write!(f, "{by} already approved these parameters"),
            UnknownAdmission { member } => {
                write!(f, "no admission of {member} is open (its own registration opens one)")
            }
            AdmissionCertificateDiffers { member } => {
                write!(f, "the admission of {member} is for another certificate than the one approved")
            }
            AdmissionAlreadyApproved { member, by } => write!(f, "{by} already approved the admission of {member}"),
            MemberAlreadyRegistered { member } => write!(f, "member {member} is registered already"),
            DatasetIdZero => f.write_str("a dataset id cannot be zero"),
            DatasetExists => f.write_str("dataset is already registered"),
            CapacityNotAShape { capacity, max } => {
                write!(f, "{capacity} is not a supply circuit's capacity (64, 256, 1024 or 4096; at most {max})")
            }
            AbeIndexTooLarge { max } => write!(f, "CP-ABE index longer than {max} bytes"),
            NotActiveCpc { cpc } => write!(f, "{cpc} is not an active CPC"),
            UnknownCpc { cpc } => write!(f, "unknown CPC {cpc}"),
            CommitmentInvalid => f.write_str("the dataset commitment is not a field element"),
            AbePolicyTooLong { max } => write!(f, "access policy longer than {max} bytes"),
            AbePolicyInvalid => {
                f.write_str("the access policy does not compile to its CP-ABE and zero-knowledge forms")
            }
            AbeIndexInvalid => f.write_str("the CP-ABE index is not a ciphertext of the scheme"),
            ZkPolicyInvalid => f.write_str("the zero-knowledge policy is not a valid DNF"),
            DatasetErased => f.write_str("the dataset was erased by its owner"),
            AbeIndexPolicyDiffers => {
                f.write_str("the CP-ABE index is encrypted under another policy than the statement's CP-ABE form")
            }
            ZkPolicyDiffers => f.write_str("the zero-knowledge policy hash is not the hash of the statement's DNF"),
            DemandIdUsed => f.write_str("demand id already used"),
            UnknownDataset => f.write_str("unknown dataset"),
            RequirementInvalid => f.write_str("the requirement is out of range"),
            DisclosureInvalid => f.write_str("the dataset's disclosure policy is out of range"),
            CohortTooSmall { min } => {
                write!(f, "the dataset's owner allows demands for cohorts of {min} records or more")
            }
            ValueSpanTooNarrow { min } => write!(
                f,
                "the dataset's owner allows value ranges of {} units or more (or one bound only)",
                f64::from(*min) / 1000.0
            ),
            TimeWindowTooNarrow { min_minutes } => {
                write!(f, "the dataset's owner allows time windows of {min_minutes} minutes or more")
            }
            DemandBudgetSpent { budget, epoch_h } => {
                write!(f, "a requester may publish {budget} demands on this dataset every {epoch_h} h; spent")
            }
            UnknownDemand => f.write_str("unknown demand"),
            DemandDatasetUnknown => f.write_str("the demand's dataset is unknown"),
            NotDatasetOwner { owner } => write!(f, "only the dataset's owner {owner} may do this"),
            DemandAlreadyProven => f.write_str("the demand is already proven"),
            SupplyProofRefused { proof } => write!(f, "supply proof refused: {proof}"),
            RequestIdUsed => f.write_str("request id already used"),
            NotYourDemand { requester } => write!(f, "the demand belongs to {requester}"),
            SupplyNotProven => f.write_str("the owner has not proven supply for this demand yet"),
            DurationOutOfRange { max } => write!(f, "grant duration must be 1..={max} s"),
            AccessDenied { denial } => write!(f, "access denied: {denial}"),
            UnknownGrant => f.write_str("unknown grant"),
            NotGrantOwner { owner } => write!(f, "only the dataset's owner {owner} issues the re-key"),
            GrantRevoked { revocation } => write!(f, "grant revoked: {revocation}"),
            GrantExpired => f.write_str("grant expired"),
            RekeyAlreadyIssued => f.write_str("the re-key for this grant is already issued"),
            SealedTokenTooLarge { max } => write!(f, "sealed token longer than {max} bytes"),
            SealedTokenInvalid => f.write_str("the sealed token is not an IBE ciphertext"),
            SealedPseudonymsTooLarge { max } => write!(f, "sealed pseudonyms longer than {max} bytes"),
            SealedPseudonymsInvalid => {
                f.write_str("the sealed pseudonyms are not an IBE ciphertext to the grant's requester")
            }
            NotGrantParty => f.write_str("only the owner, the requester or the KGC revokes a grant"),
            GrantAlreadyRevoked => f.write_str("grant already revoked"),
            NotGrantCpc { cpc } => write!(f, "only the grant's CPC {cpc} records its re-encryption and fetches"),
            NoRekey => f.write_str("no re-key was issued for this grant"),
            GrantDatasetUnknown => f.write_str("the grant's dataset is unknown"),
            ReceiptRecordsOutOfRange { records, capacity } => {
                write!(f, "the receipt covers {records} records; the dataset holds 1..={capacity}")
            }
            PurposeUnsupported { allowed } => {
                write!(f, "break-glass serves the purposes of use {} only", allowed.join(", "))
            }
            BreakGlassOwnerInvalid { owner } => write!(f, "{owner} is not another active hospital"),
            SealedScopeTooLarge { max } => write!(f, "sealed scope longer than {max} bytes"),
            SealedScopeInvalid => f.write_str("the sealed scope is not an IBE ciphertext to the owner"),
            BreakGlassUnreviewed { max } => {
                write!(f, "{max} break-glass uses of this member await review; none more until they are reviewed")
            }
            UnknownBreakGlass => f.write_str("unknown break-glass request"),
            NotBreakGlassOwner { owner } => write!(f, "only {owner}, whom the break-glass request asks, may do this"),
            BreakGlassExpired => f.write_str("the break-glass request's time is over"),
            BreakGlassReviewed => f.write_str("the break-glass request is already reviewed"),
            BreakGlassGrantsSpent { max } => write!(f, "a break-glass request yields at most {max} grants"),
            GrantIdUsed => f.write_str("grant id already used"),
            SealedPointerInvalid => f.write_str("the sealed pointer is not an IBE ciphertext to the requester"),
            RevocationOfJustified => f.write_str("only an unjustified break-glass use can revoke a credential"),
            ConsentCommitmentInvalid => f.write_str("the consent commitment is not a field element"),
            ConsentCommitmentsOutOfRange { max } => write!(f, "a consent commitment names 1..={max} datasets"),
            ConsentDatasetRepeated => f.write_str("the consent commitment names a dataset twice"),
            AnonymousPathClosed => f.write_str("the anonymous path is not open: no escrow key is formed"),
            PseudonymInvalid => f.write_str("the pseudonym does not name a one-time key"),
            PseudonymUsed => f.write_str("this one-time key already made a demand"),
            UnknownPseudonym => f.write_str("this pseudonym made no demand"),
            PseudonymNotAllowed => {
                f.write_str("a pseudonym may only demand, request access to its demand and revoke its grant")
            }
            NullifierInvalid => f.write_str("the nullifier is not a field element"),
            NullifierSpent => f.write_str("the nullifier is spent: the credential's budget here is used, or a replay"),
            SealedIdentityInvalid => f.write_str("the sealed identity is not an escrow ciphertext"),
            DelegatingKeyInvalid => f.write_str("the one-time delegating key is not a delegating public key"),
            CredentialRootRefused { denial } => write!(f, "credential root refused: {denial}"),
            AnonymousProofRefused { proof } => write!(f, "anonymous policy proof refused: {proof}"),
            DemandNullifierRequired => f.write_str(
                "the demand carries no nullifier: this member's named and anonymous demands share one budget",
            ),
            DemandNullifierUnexpected => {
                f.write_str("the demand carries a nullifier, but the member's credential has no anonymous leaf")
            }
            DemandNullifierRefused { proof } => write!(f, "the demand's nullifier proof refused: {proof}"),
            NotAuditAuthority => f.write_str("not an audit authority of this consortium's escrow DKG"),
            EscrowKeyFormed => f.write_str("the escrow key is formed; the DKG is closed"),
            EscrowDealingInvalid => f.write_str("the dealing is not this authority's, or does not fit the committee"),
            EscrowAlreadyDealt => f.write_str("this authority already dealt"),
            SealedShareInvalid { recipient } => {
                write!(f, "the share for authority {recipient} is missing or not IBE-sealed to it")
            }
            UnknownDealing { dealer } => write!(f, "authority {dealer} has not dealt"),
            ComplaintExists => f.write_str("this complaint is already made"),
            UnknownComplaint => f.write_str("no open complaint of this recipient against the sender"),
            RevealInvalid => f.write_str("the revealed share does not match the dealing"),
            EscrowNotClosable { window_h } => write!(
                f,
                "the DKG closes when every authority dealt and acknowledged its shares and no complaint is open, \
                 or {window_h} h after the first dealing"
            ),
            EscrowDealingLate { window_h } => write!(f, "dealings are taken for {window_h} h from the first one"),
            EscrowAckEarly => {
                f.write_str("an acknowledgement needs every dealing on chain and none of the sender's complaints open")
            }
            EscrowAlreadyAcked => f.write_str("this authority already acknowledged its shares"),
            PseudonymGranted => f.write_str("this pseudonym was granted already: its demand buys one grant"),
            EscrowTooFewDealers { qualified, threshold } => {
                write!(f, "{qualified} dealers qualify; the key needs {threshold}")
            }
            AuditAlreadyApproved { by } => write!(f, "{by} already approved this audit case"),
            AuditCaseUnknown => f.write_str("unknown audit case"),
            AuditCaseNotApproved => f.write_str("the membership quorum has not approved this audit case"),
            AuditCaseOpened => f.write_str("the audit case is already opened"),
            AuditShareInvalid => {
                f.write_str("the decryption share is not the sender's, or does not verify for the case")
            }
            AuditShareDuplicate => f.write_str("this authority already gave its share for the case"),
        }
    }
}

impl fmt::Display for TxPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TxPart::TooLong => "too long",
            TxPart::Empty => "empty",
            TxPart::Version => "unknown version",
            TxPart::Framing => "body and signature do not fill it",
            TxPart::Body => "the body does not parse",
        })
    }
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertProblem::UnknownIssuer => "not issued by this consortium CA",
            CertProblem::BadSignature => "CA signature does not verify",
            CertProblem::NotYetValid => "not valid yet at ledger time",
            CertProblem::Expired => "expired at ledger time",
            CertProblem::Revoked => "revoked",
            CertProblem::WrongRole => "wrong role",
            CertProblem::AttributeMismatch => "attributes do not open the certified commitment",
            CertProblem::WrongSubject => "wrong subject",
            CertProblem::Other => "the check failed",
        })
    }
}

impl fmt::Display for TextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TextField::DatasetName => "dataset name",
            TextField::MemberId => "member id",
            TextField::Reason => "reason",
        })
    }
}

impl fmt::Display for ProofFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofFault::Invalid => f.write_str("the proof does not verify for the published statement"),
            ProofFault::Undecodable => f.write_str("the proof does not decode"),
            ProofFault::OverBudget { max } => write!(f, "more than {max} proofs from this member in one batch"),
            ProofFault::NoVerifyingKey => f.write_str("no verifying key for this circuit at genesis"),
            ProofFault::StatementShape => f.write_str("the statement does not fit the verifying key"),
            ProofFault::StatementUnknown => {
                f.write_str("the proof names a demand or dataset unknown before this block")
            }
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::RootUnknown => f.write_str("the credential root is not one the registry published"),
            Denial::RootPredatesRevocation => f.write_str("the credential root predates a revocation"),
            Denial::RootStale => f.write_str("the credential root is stale; prove against the current root"),
            Denial::PolicyProof { proof } => write!(f, "policy proof refused: {proof}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_snake_case_tags_with_their_fields() {
        let r = Reason::AccessDenied { denial: Denial::PolicyProof { proof: ProofFault::OverBudget { max: 64 } } };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"code":"access_denied","denial":{"code":"policy_proof","proof":{"code":"over_budget","max":64}}}"#
        );
        assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), r);
        let r = Reason::Undecodable { part: TxPart::Body };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"code":"undecodable","part":"body"}"#);
    }

    #[test]
    fn unknown_codes_and_stray_fields_do_not_decode() {
        assert!(serde_json::from_str::<Reason>(r#"{"code":"made_up"}"#).is_err());
        let stray = r#"{"code":"unknown_member","member":"x","text":"y"}"#;
        assert!(serde_json::from_str::<Reason>(stray).is_err());
        assert!(serde_json::from_str::<Reason>(r#"{"code":"unknown_member"}"#).is_err(), "a missing field");
        assert!(serde_json::from_str::<Reason>(r#""duplicate""#).is_err());
    }

    #[test]
    fn the_text_is_made_from_the_code_and_its_fields() {
        let r = Reason::ReceiptRecordsOutOfRange { records: 70, capacity: 64 };
        assert_eq!(r.to_string(), "the receipt covers 70 records; the dataset holds 1..=64");
        let r = Reason::CertificateRefused { problem: CertProblem::Expired };
        assert_eq!(r.to_string(), "certificate refused: expired at ledger time");
    }
}
