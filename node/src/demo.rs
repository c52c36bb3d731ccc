//! `dualchain demo`: the cryptographic part of the sharing flow in one process
//! (DESIGN.md §3 steps 2–4 and 8–9, without chain and storage).
//!
//! A consortium CA certifies a hospital, two research institutes, a KGC and three CPCs;
//! the KGC and CPCs set up ESKI-IBE and every member obtains its IBE key by blinded issuing;
//! the KGC sets up CP-ABE and delivers each research institute its attribute key
//! IBE-encrypted; the hospital signcrypts bedside-monitor FHIR Observations for the CPC and
//! publishes the dataset index under an access policy; the authorised institute opens the
//! index, the unauthorised one is refused; the hospital issues a scoped re-key token sealed
//! to the CPC, the CPC verifies and re-encrypts the capsules in one batch, and the
//! institute decrypts and checks every owner signature. Each step is printed with its time.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use dualchain_crypto::abe::ac17::Ac17;
use dualchain_crypto::abe::{AbeScheme, Policy};
use dualchain_crypto::cbsre::{
    signcrypt, DatasetId, DelegatingSecretKey, ReKeyToken, RecordHeader, Signcrypted, TokenScope,
};
use dualchain_crypto::cert::{
    AttributeSet, CaPublicKey, Certificate, CertificateAuthority, CertificateFields, NoRevocations, Role, TrustContext,
};
use dualchain_crypto::hash::{digest, Transcript};
use dualchain_crypto::ibe::{self, AuthoritySecret, IbePrivateKey, IbePublicParams, KeyRequest};
use dualchain_crypto::reencrypt::{reencrypt_records, CpuBackend, ReencryptBackend};
use dualchain_crypto::sign::SigningKeypair;
use dualchain_crypto::Codec;
use dualchain_prover::groth16::Prover;
use dualchain_prover::policy::{key_hash, Credential, CredentialTree, PolicyCircuit};
use dualchain_prover::shapes::Shape;
use dualchain_prover::supply::{self, Requirement, SupplyCircuit, SupplyShape};
use dualchain_prover::verify::verify;
use dualchain_prover::ProverError;
use ff::Field;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::{fhir, zk};

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Observations the hospital shares.
    pub records: usize,
    /// Seed for reproducible runs; fresh OS randomness when absent.
    pub seed: Option<u64>,
    /// Where Groth16 parameter files are cached between runs.
    pub params_dir: std::path::PathBuf,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { records: 64, seed: None, params_dir: zk::default_params_dir() }
    }
}

/// One timed step.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub elapsed: Duration,
}

/// What happened, for the closing summary and for tests.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub steps: Vec<Step>,
    pub members: usize,
    pub records_uploaded: usize,
    pub records_reencrypted: usize,
    /// Decrypted records equal, byte for byte, to the uploaded FHIR JSON.
    pub records_match: bool,
    /// (requester, reason) for every refusal the flow produced.
    pub denials: Vec<(String, String)>,
    /// (proof, prove time, verify time) of every zero-knowledge proof made and checked.
    pub proofs: Vec<(String, Duration, Duration)>,
}

/// Access policy of the demo dataset.
pub const DEMO_POLICY: &str = "role:research and (dept:cardiology or dept:icu or dept:anesthesiology)";

const KGC: &str = "kgc";
const CPCS: [&str; 3] = ["cpc-1", "cpc-2", "cpc-3"];
const HOSPITAL: &str = "hospital-a";
const AUTHORISED: &str = "research-1";
const UNAUTHORISED: &str = "research-2";
const ATTRIBUTE_SALT_LEN: usize = 32;
/// Departments the demo dataset's policy admits, for CP-ABE and the ZK policy alike.
const DEPARTMENTS: [&str; 3] = ["cardiology", "icu", "anesthesiology"];

/// A certified member with its private keys.
struct Member {
    id: String,
    signer: SigningKeypair,
    dsk: DelegatingSecretKey,
    attributes: AttributeSet,
    attribute_salt: [u8; ATTRIBUTE_SALT_LEN],
    cert: Certificate,
    ibe_key: Option<IbePrivateKey>,
}

fn now_unix() -> Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH).context("system clock before 1970")?.as_secs())
}

struct Timer<'a> {
    out: &'a mut dyn Write,
    report: DemoReport,
    total_steps: usize,
}

impl Timer<'_> {
    /// Runs one step, printing its name, detail line and time.
    fn step<T>(&mut self, name: &'static str, f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
        let n = self.report.steps.len() + 1;
        let start = Instant::now();
        let (value, detail) = f().with_context(|| format!("step {n} ({name}) failed"))?;
        let elapsed = start.elapsed();
        writeln!(self.out, "[{n}/{}] {name:<58} {:>10}", self.total_steps, fmt_duration(elapsed))?;
        for line in detail.lines() {
            writeln!(self.out, "      {line}")?;
        }
        self.report.steps.push(Step { name, elapsed });
        Ok(value)
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// Runs the demo, writing progress to `out`.
pub fn run(cfg: &DemoConfig, out: &mut dyn Write) -> Result<DemoReport> {
    ensure!(cfg.records > 0, "the demo needs at least one record");
    let mut rng = match cfg.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_entropy(),
    };
    let now = now_unix()?;
    writeln!(out, "dualchain demo: the cryptographic sharing flow in one process")?;
    writeln!(out, "  members: CA, {KGC}, {}, {HOSPITAL}, {AUTHORISED}, {UNAUTHORISED}", CPCS.join(", "))?;
    writeln!(out, "  policy:  {DEMO_POLICY}")?;
    writeln!(out)?;
    let mut t = Timer { out, report: DemoReport::default(), total_steps: 13 };
    let shape = SupplyShape::for_records(cfg.records)
        .ok_or_else(|| anyhow!("{} records exceed the largest supply shape (4096)", cfg.records))?;

    // 1. Registration: the CA certifies every member (DESIGN.md §3 step 2).
    let (ca, mut members) = t.step("CA certifies the consortium members", || {
        let ca = CertificateAuthority::generate("consortium-ca", &mut rng)?;
        let mut specs: Vec<(&str, Role, Vec<&str>)> = vec![
            (KGC, Role::Kgc, vec!["role:kgc"]),
            (HOSPITAL, Role::Hospital, vec!["role:hospital", "dept:icu"]),
            (AUTHORISED, Role::ResearchInstitute, vec!["role:research", "dept:cardiology"]),
            (UNAUTHORISED, Role::ResearchInstitute, vec!["role:research", "dept:dermatology"]),
        ];
        specs.extend(CPCS.iter().map(|c| (*c, Role::Cpc, vec!["role:cpc"])));
        let mut members = Vec::new();
        let mut lines = String::new();
        for (serial, (id, role, attrs)) in specs.into_iter().enumerate() {
            let m = certify(&ca, &mut rng, id, role, &attrs, serial as u64 + 1, now)?;
            m.cert.verify_role(ca.public(), now, &NoRevocations, role)?;
            lines.push_str(&format!("{id:<11} {role:<9} serial {:>2}  {}\n", serial + 1, attrs.join(", ")));
            members.push(m);
        }
        Ok(((ca, members), lines))
    })?;
    t.report.members = members.len();

    // Genesis: Groth16 parameters per circuit shape (their content hashes are pinned).
    let (policy_pk, supply_pk) = t.step("Groth16 parameters for the policy and supply circuits", || {
        let mut detail = String::new();
        let mut keys = Vec::new();
        for s in [Shape::Policy, Shape::Supply(shape)] {
            let start = Instant::now();
            let (pk, generated) = zk::load_or_generate(s, &cfg.params_dir, &mut rng)?;
            detail.push_str(&format!(
                "{:<12} {} constraints, {} in {}, content hash {}\n",
                s.name(),
                pk.circuit.constraints,
                if generated { "generated" } else { "loaded" },
                fmt_duration(start.elapsed()),
                hex::encode(&pk.content_hash[..8])
            ));
            keys.push(pk);
        }
        let supply_pk = keys.pop().ok_or_else(|| anyhow!("missing supply parameters"))?;
        let policy_pk = keys.pop().ok_or_else(|| anyhow!("missing policy parameters"))?;
        Ok(((policy_pk, supply_pk), detail))
    })?;

    // 2. ESKI-IBE setup: the KGC and each CPC extend the verifiable master-key chain.
    let authorities: Vec<&str> = std::iter::once(KGC).chain(CPCS).collect();
    let (params, secrets) = t.step("ESKI-IBE setup: KGC + 3 CPCs, master-key chain verified", || {
        let (params, secrets) = IbePublicParams::setup(&mut rng, &authorities)?;
        params.verify_chain()?;
        Ok(((params, secrets), format!("chain e(S_i, Y_i-1) = e(P1, Y_i) holds for all {} links", authorities.len())))
    })?;

    // 3. Escrow-free key issuing for the members that receive IBE-encrypted material.
    t.step("Blinded IBE key issuing, every authority's share checked", || {
        let mut detail = String::new();
        for id in [AUTHORISED, UNAUTHORISED, CPCS[0]] {
            let m = member_mut(&mut members, id)?;
            let start = Instant::now();
            let key = issue_ibe_key(&mut rng, &params, &secrets, m, ca.public(), now)?;
            detail.push_str(&format!(
                "{id:<11} key from {} shares in {}\n",
                secrets.len(),
                fmt_duration(start.elapsed())
            ));
            m.ibe_key = Some(key);
        }
        Ok(((), detail))
    })?;

    // 4. CP-ABE: the KGC checks each research institute's attribute opening against its
    //    certificate and delivers the attribute key IBE-encrypted (DESIGN.md §3 step 8).
    let (abe_pk, abe_keys) = t.step("CP-ABE setup (AC17) and attribute keys delivered via IBE", || {
        let (pk, msk) = Ac17::setup()?;
        let mut keys = Vec::new();
        let mut detail =
            format!("scheme {} (BN254, about 100-bit security; see crypto::abe)\n", <Ac17 as AbeScheme>::NAME);
        for id in [AUTHORISED, UNAUTHORISED] {
            let m = member(&members, id)?;
            m.cert.check_attribute_opening(&m.attributes, &m.attribute_salt)?;
            let key = Ac17::keygen(&msk, &m.attributes)?;
            let sealed = ibe::encrypt(&mut rng, &params, id, &key.to_bytes(), b"cp-abe-user-key")?;
            let sealed = ibe::IbeCiphertext::from_bytes(&sealed.to_bytes())?; // over the wire
            let ibe_key = m.ibe_key.as_ref().ok_or_else(|| anyhow!("{id} has no IBE key"))?;
            let opened = <Ac17 as AbeScheme>::UserKey::from_bytes(&ibe_key.decrypt(&sealed, b"cp-abe-user-key")?)?;
            detail.push_str(&format!("{id:<11} key for {{{}}}\n", m.attributes.iter().collect::<Vec<_>>().join(", ")));
            keys.push((id, opened));
        }
        Ok(((pk, keys), detail))
    })?;

    // Registry: credential leaves from CA-validated attributes, in a Poseidon Merkle tree.
    let tree = t.step("Registry builds the credential tree from certified attributes", || {
        let mut tree = CredentialTree::new();
        let mut detail = String::new();
        for (index, id) in [AUTHORISED, UNAUTHORISED].into_iter().enumerate() {
            let m = member(&members, id)?;
            m.cert.check_attribute_opening(&m.attributes, &m.attribute_salt)?;
            tree.set(index as u64, credential(m).leaf());
            detail.push_str(&format!("{id:<11} leaf {index}\n"));
        }
        detail.push_str(&format!("credential root {}", short_fr(&tree.root())));
        Ok((tree, detail))
    })?;

    // 5. Upload: the hospital signcrypts each Observation for the CPC.
    let dataset = DatasetId::derive(HOSPITAL, "icu-bedside-2026");
    let ward = fhir::Ward { hospital: HOSPITAL.into(), patients: 8, start_unix: now - 3600, interval_s: 30 };
    let (plaintexts, records, h1, observations) =
        t.step("Hospital signcrypts FHIR R4 Observations for cpc-1", || {
            let hospital = member(&members, HOSPITAL)?;
            let observations = fhir::observations(&ward, cfg.records, &mut rng);
            let plaintexts: Vec<Vec<u8>> = observations.iter().map(serde_json::to_vec).collect::<Result<_, _>>()?;
            let mut records = Vec::with_capacity(plaintexts.len());
            for (i, pt) in plaintexts.iter().enumerate() {
                let header = RecordHeader {
                    owner: HOSPITAL.into(),
                    dataset,
                    record_index: i as u64,
                    created_at: now,
                    content_type: "fhir-r4:observation".into(),
                };
                let rec = signcrypt(&mut rng, &hospital.signer, &hospital.dsk.public(), header, pt)?;
                // The CPC receives encodings and checks them as it stores them.
                let rec = Signcrypted::from_bytes(&rec.to_bytes())?;
                rec.verify_signature(&hospital.cert.fields.signing_key)?;
                records.push(rec);
            }
            let h1 = manifest_hash(&records);
            let bytes: usize = records.iter().map(|r| r.to_bytes().len()).sum();
            let detail = format!(
                "{} records ({} heart rate, {} SpO2), {} bytes signcrypted; e.g. {}\nmanifest hash H1 = {}",
                records.len(),
                cfg.records.div_ceil(2),
                cfg.records / 2,
                bytes,
                summarise(&observations[0]),
                hex::encode(&h1[..16])
            );
            Ok(((plaintexts, records, h1, observations), detail))
        })?;
    t.report.records_uploaded = records.len();

    // 6. Registration of the dataset: its index pointer under the access policy.
    let policy = Policy::parse(DEMO_POLICY)?;
    let index_ct = t.step("Hospital publishes the index under its CP-ABE policy", || {
        let index = serde_json::json!({ "dataset": dataset.to_hex(), "h1": hex::encode(h1), "cpc": CPCS[0], "records": records.len() });
        let ct = Ac17::encrypt(&abe_pk, &policy, &serde_json::to_vec(&index)?)?;
        let bytes = ct.to_bytes();
        let detail = format!("policy (normalised) {}\nciphertext {} bytes", policy, bytes.len());
        Ok((<Ac17 as AbeScheme>::Ciphertext::from_bytes(&bytes)?, detail))
    })?;

    // Demand and supply proof: the requester publishes a data requirement; the owner's node
    // proves in zero knowledge that its committed dataset meets it (DESIGN.md §3 steps 5–6).
    let salt = blstrs::Scalar::random(&mut rng);
    let zk_records: Vec<supply::Record> = observations
        .iter()
        .map(|o| fhir::to_record(o, &ward))
        .collect::<Result<_, String>>()
        .map_err(|e| anyhow!(e))?;
    let commitment = supply::dataset_commitment(shape, &zk_records, salt)?;
    let hr_records = cfg.records.div_ceil(2);
    let requirement = Requirement {
        code: supply::fhir::loinc_code("8867-4").ok_or_else(|| anyhow!("LOINC"))?,
        unit: supply::fhir::unit_code("/min"),
        age_lo: 8,
        age_hi: 12,
        sex: supply::sex::UNKNOWN_OR_ANY,
        value_min: Some(40_000),
        value_max: Some(200_000),
        time_from: supply::fhir::minutes(now - 7200).ok_or_else(|| anyhow!("time"))?,
        time_to: supply::fhir::minutes(now).ok_or_else(|| anyhow!("time"))?,
        threshold: u16::try_from((hr_records / 2).max(1))?,
    };
    let prover = Prover::default();
    t.step("research-1 demands data; the hospital proves supply (Groth16)", || {
        let circuit = SupplyCircuit::new(shape, &zk_records, salt, requirement)?;
        let statement = circuit.statement();
        ensure!(statement.dataset_commitment == commitment, "the registered commitment differs from the records");
        let start = Instant::now();
        let (proof, _) = prover.prove(&supply_pk, circuit, &mut rng)?;
        let prove_time = start.elapsed();
        // The zk contract's check: the registered C_D and the published requirement.
        let start = Instant::now();
        verify(&supply_pk.pvk, supply_pk.vk(), &proof, &[commitment, requirement.hash()])?;
        let verify_time = start.elapsed();
        let detail = format!(
            "demand: >= {} heart-rate observations, ages 40-64, 40-200 bpm, last 2 h\n\
             dataset commitment C_D {}; {} of {} records meet it\n\
             supply proof ({}) made in {}, verified in {}",
            requirement.threshold,
            short_fr(&commitment),
            requirement.count_matching(&zk_records),
            zk_records.len(),
            shape.name(),
            fmt_duration(prove_time),
            fmt_duration(verify_time)
        );
        Ok((("supply".to_string(), prove_time, verify_time), detail))
    })
    .map(|p| t.report.proofs.push(p))?;

    // Attribute proofs: each requester proves that its certified attributes satisfy the
    // dataset's policy, bound to its request id and key (DESIGN.md §3 step 7).
    let zk_policy = zk::research_in_departments(&DEPARTMENTS)?;
    let policy_denials = t.step("Requesters prove the access policy in zero knowledge", || {
        let mut detail = String::new();
        let mut denials = Vec::new();
        let mut proofs = Vec::new();
        for (index, id) in [AUTHORISED, UNAUTHORISED].into_iter().enumerate() {
            let m = member(&members, id)?;
            let mut request_id = [0u8; 32];
            rng.fill_bytes(&mut request_id);
            let circuit = PolicyCircuit {
                credential: credential(m),
                path: tree.path(index as u64),
                policy: zk_policy.clone(),
                request_id,
            };
            let start = Instant::now();
            match prover.prove(&policy_pk, circuit, &mut rng) {
                Ok((proof, _)) => {
                    let prove_time = start.elapsed();
                    let binding = dualchain_prover::policy::request_binding(
                        &request_id,
                        key_hash(m.cert.fields.signing_key.as_bytes()),
                    );
                    let start = Instant::now();
                    verify(&policy_pk.pvk, policy_pk.vk(), &proof, &[tree.root(), zk_policy.hash(), binding])?;
                    let verify_time = start.elapsed();
                    detail.push_str(&format!(
                        "{id:<11} policy proof made in {}, verified in {} (bound to request {})\n",
                        fmt_duration(prove_time),
                        fmt_duration(verify_time),
                        hex::encode(&request_id[..4])
                    ));
                    proofs.push((format!("policy ({id})"), prove_time, verify_time));
                }
                Err(ProverError::Unsatisfied { .. }) => {
                    let reason = "its certified attributes do not satisfy the policy; no proof exists".to_string();
                    detail.push_str(&format!("{id:<11} DENIED: {reason}\n"));
                    denials.push((id.to_string(), reason));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(((denials, proofs), detail))
    })?;
    let (policy_denials, policy_proofs) = policy_denials;
    ensure!(
        policy_denials.len() == 1 && policy_denials[0].0 == UNAUTHORISED,
        "expected exactly {UNAUTHORISED} to fail the policy proof, got {policy_denials:?}"
    );
    t.report.proofs.extend(policy_proofs);
    t.report.denials.extend(policy_denials);

    // 7. Requesters try to open the index; the CPC compares H1 with its manifest H1'.
    let denials = t.step("Requesters open the index; cpc-1 compares H1 with H1'", || {
        let mut denials = Vec::new();
        let mut detail = String::new();
        for (id, key) in &abe_keys {
            match Ac17::decrypt(key, &index_ct) {
                Ok(index) => {
                    let index: serde_json::Value = serde_json::from_slice(&index)?;
                    let claimed = index["h1"].as_str().ok_or_else(|| anyhow!("index without h1"))?;
                    let h1_prime = manifest_hash(&records);
                    ensure!(claimed == hex::encode(h1_prime), "H1 from the index does not match the CPC manifest H1'");
                    detail.push_str(&format!("{id:<11} opened the index: dataset at {}, H1 = H1'\n", index["cpc"]));
                }
                Err(e) => {
                    detail.push_str(&format!("{id:<11} DENIED: {e}\n"));
                    denials.push((id.to_string(), e.to_string()));
                }
            }
        }
        Ok((denials, detail))
    })?;
    ensure!(
        denials.len() == 1 && denials[0].0 == UNAUTHORISED,
        "expected exactly {UNAUTHORISED} to be denied, got {denials:?}"
    );
    t.report.denials.extend(denials);

    // 8. Grant: the owner issues a scoped re-key token sealed to the CPC; the CPC verifies
    //    the capsules in one batch and re-encrypts them (DESIGN.md §3 steps 8–9).
    let backend = CpuBackend;
    let reencrypted = t.step("Owner issues re-key token; cpc-1 batch-verifies and re-encrypts", || {
        let hospital = member(&members, HOSPITAL)?;
        let requester = member(&members, AUTHORISED)?;
        let mut grant_id = [0u8; 32];
        rng.fill_bytes(&mut grant_id);
        let token = ReKeyToken::issue(
            &mut rng,
            &hospital.signer,
            &hospital.dsk,
            &requester.cert.fields.delegating_key,
            TokenScope { owner: HOSPITAL, requester: AUTHORISED, dataset, grant_id, expiry: now + 3600 },
        )?;
        let sealed = ibe::encrypt(&mut rng, &params, CPCS[0], &token.to_bytes(), b"rekey-token")?;
        let cpc = member(&members, CPCS[0])?;
        let cpc_key = cpc.ibe_key.as_ref().ok_or_else(|| anyhow!("cpc-1 has no IBE key"))?;
        let token = ReKeyToken::from_bytes(&cpc_key.decrypt(&sealed, b"rekey-token")?)?;
        let start = Instant::now();
        let out = reencrypt_records(&backend, &token, &hospital.cert.fields.signing_key, now, &records, &mut rng)?;
        let batch = start.elapsed();
        let rate = out.len() as f64 / batch.as_secs_f64().max(1e-9);
        let detail = format!(
            "token scoped to dataset {dataset}, expires in 1 h, sealed to cpc-1 with IBE\n\
             {} capsules verified (one MSM) and re-encrypted on backend `{}` in {} ({rate:.0} capsules/s)",
            out.len(),
            backend.name(),
            fmt_duration(batch)
        );
        Ok((out, detail))
    })?;
    t.report.records_reencrypted = reencrypted.len();

    // 9. The requester decrypts and checks every owner signature; another member cannot.
    let matches = t.step("research-1 decrypts and checks the owner's signatures", || {
        let requester = member(&members, AUTHORISED)?;
        let hospital_vk = member(&members, HOSPITAL)?.cert.fields.signing_key;
        let mut equal = 0;
        for (re, pt) in reencrypted.iter().zip(&plaintexts) {
            let m = re.decrypt(&requester.dsk, &hospital_vk)?;
            if &m == pt {
                equal += 1;
            }
        }
        let outsider = member(&members, UNAUTHORISED)?;
        let refused = reencrypted[0].decrypt(&outsider.dsk, &hospital_vk);
        let outsider_msg = match refused {
            Ok(_) => bail!("{UNAUTHORISED} decrypted a record re-encrypted for {AUTHORISED}"),
            Err(e) => e.to_string(),
        };
        let detail = format!(
            "{equal}/{} records decrypted, signatures valid, identical to the uploaded FHIR JSON\n\
             {UNAUTHORISED} on the same re-encrypted records: {outsider_msg}",
            reencrypted.len()
        );
        Ok((equal == plaintexts.len(), detail))
    })?;
    t.report.records_match = matches;
    let mut report = t.report;
    report.denials.push((UNAUTHORISED.into(), "cannot decrypt records re-encrypted for research-1".into()));

    let total: Duration = report.steps.iter().map(|s| s.elapsed).sum();
    writeln!(out)?;
    writeln!(out, "summary")?;
    writeln!(out, "  members certified        {}", report.members)?;
    writeln!(
        out,
        "  records shared           {} uploaded, {} re-encrypted, all equal: {}",
        report.records_uploaded, report.records_reencrypted, report.records_match
    )?;
    writeln!(out, "  grants / denials         1 / {}", report.denials.len())?;
    for (name, prove, verify) in &report.proofs {
        writeln!(out, "  proof {name:<18} prove {}, verify {}", fmt_duration(*prove), fmt_duration(*verify))?;
    }
    writeln!(out, "  total time               {}", fmt_duration(total))?;
    ensure!(report.records_match, "decrypted records differ from the uploaded ones");
    Ok(report)
}

fn certify(
    ca: &CertificateAuthority,
    rng: &mut ChaCha20Rng,
    id: &str,
    role: Role,
    attrs: &[&str],
    serial: u64,
    now: u64,
) -> Result<Member> {
    let signer = SigningKeypair::generate(rng);
    let dsk = DelegatingSecretKey::generate(rng);
    let attributes = AttributeSet::new(attrs.iter().copied())?;
    let mut attribute_salt = [0u8; ATTRIBUTE_SALT_LEN];
    rng.fill_bytes(&mut attribute_salt);
    let cert = ca.issue(CertificateFields {
        serial,
        subject: id.into(),
        role,
        signing_key: signer.public(),
        delegating_key: dsk.public(),
        attribute_commitment: attributes.commit(&attribute_salt),
        not_before: now - 60,
        not_after: now + 365 * 24 * 3600,
    })?;
    Ok(Member { id: id.into(), signer, dsk, attributes, attribute_salt, cert, ibe_key: None })
}

/// A member's credential as the registry stores it: the certified attribute vector, the
/// attribute salt as field element, and the hash of its signing key.
fn credential(m: &Member) -> Credential {
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&m.attribute_salt[..16]);
    Credential {
        attributes: zk::credential_vector(&m.attributes),
        salt: dualchain_prover::field::fr_from_bytes16(&salt),
        key_hash: key_hash(m.cert.fields.signing_key.as_bytes()),
    }
}

fn short_fr(x: &blstrs::Scalar) -> String {
    hex::encode(&x.to_bytes_le()[..8])
}

fn member<'a>(members: &'a [Member], id: &str) -> Result<&'a Member> {
    members.iter().find(|m| m.id == id).ok_or_else(|| anyhow!("unknown member {id}"))
}

fn member_mut<'a>(members: &'a mut [Member], id: &str) -> Result<&'a mut Member> {
    members.iter_mut().find(|m| m.id == id).ok_or_else(|| anyhow!("unknown member {id}"))
}

/// The blinded issuing round trip: request, one share per authority (each authority
/// authenticates the request and checks the previous share), unblinding.
fn issue_ibe_key(
    rng: &mut ChaCha20Rng,
    params: &IbePublicParams,
    secrets: &[AuthoritySecret],
    m: &Member,
    ca: &CaPublicKey,
    now: u64,
) -> Result<IbePrivateKey> {
    let (request, state) = KeyRequest::new(rng, &m.id, &m.signer)?;
    let request = KeyRequest::from_bytes(&request.to_bytes())?;
    let mut shares = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let share = secret.issue_share(
            params,
            &request,
            shares.last(),
            &m.cert,
            &TrustContext::new(ca, now, &NoRevocations),
        )?;
        shares.push(share);
    }
    Ok(state.finish(params, &request, &shares)?)
}

/// H1: the hash of the CPC blob manifest (the ordered record encodings). The storage
/// layer will own the manifest format; the demo hashes the records directly.
fn manifest_hash(records: &[Signcrypted]) -> [u8; 32] {
    let t = records.iter().fold(Transcript::new(), |t, r| t.part(&r.to_bytes()));
    digest("cpc-manifest", &t)
}

fn summarise(obs: &serde_json::Value) -> String {
    format!(
        "{} {} {} at {}",
        obs["code"]["text"].as_str().unwrap_or("?"),
        obs["valueQuantity"]["value"],
        obs["valueQuantity"]["unit"].as_str().unwrap_or(""),
        obs["effectiveDateTime"].as_str().unwrap_or("?")
    )
}
