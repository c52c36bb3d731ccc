//! `dualchain`'s command line: `init` (genesis), `node` (one node until SIGTERM) and
//! `client` (a node's API as a member).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::{ConsortiumFile, NodeConfig};
use crate::genesis::assemble::{AssembleOptions, RenewOptions};
use crate::genesis::institution::{InstallOptions, JoinOptions, KeygenOptions};
use crate::genesis::issue::IssueOptions;
use crate::genesis::{self, InitOptions};

pub mod client;

use client::ClientArgs;

#[derive(Parser)]
#[command(
    name = "dualchain",
    version,
    about = "Consortium appliance for sharing medical IoT data without giving it away"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// An institution's keys, made on its own machine: secrets stay in DIR/secrets, the
    /// public part goes to DIR/contribution.toml for the coordinator (README: "Genesis
    /// across institutions").
    Keygen(KeygenOptions),
    /// The coordinator: check every institution's contribution and assemble the
    /// consortium from their public parts, issuing certificates from the CAs it keeps.
    Assemble(AssembleOptions),
    /// An institution: check the assembled consortium against its own contribution, then
    /// write its node's configuration.
    Join(JoinOptions),
    /// The coordinator: renew a member's certificate from the kept member CA (same keys,
    /// next serial, new validity); writes issued/<member>.toml.
    Renew(RenewOptions),
    /// The coordinator: certify an institution that joins after genesis from its
    /// contribution.toml (made by `keygen`), from the kept CAs, with a validator slot for
    /// its node; writes issued/<member>.toml and prints the certificate's SHA-256, which the
    /// members approve (`client admit-member`) before the ledger registers it
    /// (deploy/README.md: "Admitting a new institution").
    Issue(IssueOptions),
    /// The validator set: show it, propose a change, approve it with this validator's
    /// consensus key, submit it once 2f + 1 approved (deploy/README.md: "Adding or removing
    /// a validator").
    #[command(subcommand)]
    Validator(ValidatorCommand),
    /// An institution: install a renewed certificate; its running node registers it.
    InstallCertificate(InstallOptions),
    /// A TEST consortium on one machine, which makes every secret and the Groth16
    /// trapdoor (consortium.toml says so): keys, certificates, IBE/CP-ABE setup, Groth16
    /// parameters and one configuration per node.
    Init(InitOptions),
    /// Run one node until SIGTERM: consensus, ledger, the hosted member's agents, the API.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Call a node's API as a member.
    Client(ClientArgs),
    /// The multi-party Groth16 setup, run in turn by the consortium's institutions
    /// (README: "The ceremony").
    #[command(subcommand)]
    Ceremony(CeremonyCommand),
    /// Clear a stopped node's ledger (blocks, index, contract state) so that it re-applies
    /// the consensus archive at its next start: the repair of a ledger whose state departed
    /// from the consortium's (alert LedgerStateDiverged). The consensus log stays.
    LedgerRebuild {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ValidatorCommand {
    /// The validator sets as this node knows them.
    Show {
        #[arg(long)]
        config: PathBuf,
    },
    /// Write the next set: the one in effect, less --remove, plus --add (each an
    /// issued/<member>.toml that `dualchain issue` wrote with a validator slot); with
    /// --rotate, this validator keeps its id under the new TLS certificate the CA issued
    /// (at --quic, or where it is now).
    Propose {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        add: Vec<PathBuf>,
        #[arg(long)]
        remove: Vec<u8>,
        /// The CA's answer to `tls-key`'s request (`dualchain validator certify`).
        #[arg(long)]
        rotate: Option<PathBuf>,
        /// This validator's QUIC address from the rotation on.
        #[arg(long, requires = "rotate")]
        quic: Option<std::net::SocketAddr>,
        /// Where to write the change (passed to each approver in turn).
        #[arg(long)]
        out: PathBuf,
    },
    /// Approve a change with this node's validator key (shows it first); the approval is
    /// added to the file.
    Approve {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        change: PathBuf,
    },
    /// Order a change that 2f + 1 validators of the current set approved; prints where the
    /// new set takes over.
    Submit {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        change: PathBuf,
    },
    /// Make this validator's next consensus TLS key (kept in secrets/tls-next/) and write
    /// the request for its certificate, for whoever keeps the consortium's CA.
    TlsKey {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Whoever keeps the consortium's CA: certify a validator's next TLS key.
    Certify {
        /// The certificate authorities' directory `assemble` used.
        #[arg(long)]
        ca: PathBuf,
        /// The assembled consortium (`consortium.toml`).
        #[arg(long)]
        genesis: PathBuf,
        /// The validator's request (`tls-key`).
        #[arg(long)]
        request: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

/// This node's API address and the consortium's TLS CA (what the validator commands call).
fn own_api(cfg: &NodeConfig) -> Result<(ConsortiumFile, String, Vec<u8>)> {
    let consortium = ConsortiumFile::load(&cfg.path(&cfg.consortium))?;
    let api = cfg.own_validator(&consortium)?.api.clone();
    let ca = hex::decode(&consortium.tls_ca).map_err(|e| anyhow::anyhow!("consortium.toml's tls_ca: {e}"))?;
    Ok((consortium, api, ca))
}

/// `dualchain validator …` from its arguments (those after `validator`), on the caller's
/// runtime: what the command line runs, for tests that drive a consortium in process.
pub async fn validator_command(args: &[&str]) -> Result<()> {
    #[derive(Parser)]
    struct Args {
        #[command(subcommand)]
        command: ValidatorCommand,
    }
    let parsed = Args::try_parse_from(std::iter::once("validator").chain(args.iter().copied()))?;
    validator(parsed.command).await
}

async fn validator(cmd: ValidatorCommand) -> Result<()> {
    use crate::reconfigure::{fetch_sets, propose, submit, ChangeFile};
    match cmd {
        ValidatorCommand::Show { config } => {
            let (_, api, ca) = own_api(&NodeConfig::load(&config)?)?;
            let sets = fetch_sets(&api, &ca).await?;
            println!("epoch in effect: {}", sets.epoch);
            for e in &sets.epochs {
                let when = if e.in_effect { "in effect" } else { "scheduled" };
                println!("  epoch {}: {:?}, governs after sequence {} ({when})", e.epoch, e.members, e.after_seq);
            }
            for r in &sets.roster {
                println!(
                    "  validator {}: key {}, at {}, TLS certificate SHA-256 {}",
                    r.id,
                    r.key,
                    r.quic.as_deref().unwrap_or("(no endpoint known)"),
                    r.tls_cert_sha256.as_deref().unwrap_or("-")
                );
            }
        }
        ValidatorCommand::Propose { config, add, remove, rotate, quic, out } => {
            let cfg = NodeConfig::load(&config)?;
            let (consortium, api, ca) = own_api(&cfg)?;
            let sets = fetch_sets(&api, &ca).await?;
            let rotate = match rotate {
                Some(p) => {
                    let certified: crate::reconfigure::TlsCertified =
                        serde_json::from_slice(&std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
                            .with_context(|| format!("parsing {}", p.display()))?;
                    let now = sets.roster.iter().find(|r| r.id == cfg.node).and_then(|r| r.quic.as_deref());
                    let quic = match (quic, now) {
                        (Some(q), _) => q,
                        (None, Some(now)) => now.parse().with_context(|| format!("validator address {now:?}"))?,
                        (None, None) => {
                            anyhow::bail!("the node lists no address for validator {}: give --quic", cfg.node)
                        }
                    };
                    Some(crate::reconfigure::install_tls_cert(&cfg, &consortium, &certified, quic)?)
                }
                None => None,
            };
            let mut added = Vec::new();
            for p in &add {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                let f: crate::genesis::institution::IssuedFile =
                    toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
                added.push(f.validator.ok_or_else(|| {
                    anyhow::anyhow!("{} gives {} no validator slot (dualchain issue gives one)", p.display(), f.id)
                })?);
            }
            let change = propose(&consortium.name, &sets, &added, &remove, rotate)?;
            change.save(&out)?;
            print!("{}", change.summary(Some(&sets)));
            println!(
                "written to {}: each validator of the current set runs `dualchain validator approve`",
                out.display()
            );
        }
        ValidatorCommand::Approve { config, change: path } => {
            let cfg = NodeConfig::load(&config)?;
            let (consortium, api, ca) = own_api(&cfg)?;
            let key: dualchain_crypto::sign::SigningKeypair = crate::files::from_hex(
                String::from_utf8(crate::files::read_secret(&cfg.path(&cfg.secrets.validator_key))?)?.trim(),
                "validator key",
            )?;
            anyhow::ensure!(
                hex::encode(key.public().as_bytes()) == cfg.own_validator(&consortium)?.signing_key,
                "the validator key is not node {}'s",
                cfg.node
            );
            let mut change = ChangeFile::load(&path)?;
            let sets = fetch_sets(&api, &ca).await.ok();
            print!("{}", change.summary(sets.as_ref()));
            change.approve(&consortium, &key, cfg.node)?;
            change.save(&path)?;
            println!("approved by validator {}; approvals now: {:?}", cfg.node, change.approvers()?);
        }
        ValidatorCommand::Submit { config, change } => {
            let (_, api, ca) = own_api(&NodeConfig::load(&config)?)?;
            let change = ChangeFile::load(&change)?;
            let v = submit(&api, &ca, &change).await?;
            println!(
                "ordered at sequence {}: epoch {} governs after sequence {} (the first checkpoint there); added \
                 validators must be running by then",
                v["executed_seq"], v["epoch"], v["after_seq"]
            );
        }
        ValidatorCommand::TlsKey { config, out } => {
            let cfg = NodeConfig::load(&config)?;
            let consortium = ConsortiumFile::load(&cfg.path(&cfg.consortium))?;
            let (request, key) = crate::reconfigure::new_tls_key(&cfg, &consortium)?;
            std::fs::write(&out, serde_json::to_vec_pretty(&request)?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "next TLS key of validator {} kept in {}; send {} to whoever keeps the consortium's CA \
                 (dualchain validator certify)",
                cfg.node,
                key.display(),
                out.display()
            );
        }
        ValidatorCommand::Certify { ca, genesis, request, out } => {
            let request: crate::reconfigure::TlsRequest = serde_json::from_slice(
                &std::fs::read(&request).with_context(|| format!("reading {}", request.display()))?,
            )
            .with_context(|| format!("parsing {}", request.display()))?;
            let certified = crate::genesis::issue::certify_tls(&ca, &genesis, &request)?;
            std::fs::write(&out, serde_json::to_vec_pretty(&certified)?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "TLS certificate for validator {} written to {}: its operator proposes the rotation \
                 (dualchain validator propose --rotate {})",
                certified.node,
                out.display(),
                out.display()
            );
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum CeremonyCommand {
    /// Start a ceremony in an empty directory for the policy shape and these supply shapes.
    New {
        #[arg(long)]
        dir: PathBuf,
        /// Dataset sizes the supply circuit is set up for (rounded up to a shape).
        #[arg(long, default_value = "64", value_delimiter = ',')]
        supply_records: Vec<usize>,
        /// Include the anonymous policy circuit (a consortium with the anonymous path).
        #[arg(long)]
        anonymous: bool,
    },
    /// Add this institution's phase-1 (powers of tau) contribution.
    Tau {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Close phase 1 (verified first) and compute each shape's starting parameters.
    Start {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Add this institution's phase-2 contribution to every shape.
    Delta {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Verify the whole ceremony and print every contribution's digest.
    Verify {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn ceremony(cmd: CeremonyCommand) -> Result<()> {
    use crate::genesis::ceremony as c;
    match cmd {
        CeremonyCommand::New { dir, supply_records, anonymous } => {
            let shapes = crate::genesis::consortium_shapes(&supply_records, anonymous)?;
            let log_m = c::new(&dir, &shapes)?;
            println!("ceremony started in {} for a domain of 2^{log_m}", dir.display());
        }
        CeremonyCommand::Tau { dir, name } => {
            let d = c::tau(&dir, &name)?;
            println!("phase-1 contribution of {name}: {}", hex::encode(d));
            println!("keep this digest: `dualchain ceremony verify` must list it");
        }
        CeremonyCommand::Start { dir } => {
            c::start(&dir)?;
            println!("phase 1 verified and closed; phase 2 can begin");
        }
        CeremonyCommand::Delta { dir, name } => {
            for (shape, d) in c::delta(&dir, &name)? {
                println!("phase-2 contribution of {name} to {}: {}", shape.name(), hex::encode(d));
            }
        }
        CeremonyCommand::Verify { dir } => {
            let v = c::verify(&dir)?;
            println!("phase 1:");
            for (who, d) in &v.tau {
                println!("  {who:<24} {}", hex::encode(d));
            }
            for (shape, steps) in &v.shapes {
                println!("phase 2, {}:", shape.name());
                for (who, d) in steps {
                    println!("  {who:<24} {}", hex::encode(d));
                }
            }
            println!("the ceremony verifies: its parameters are sound if one participant destroyed its secrets");
        }
    }
    Ok(())
}

/// Parses the command line and runs the command.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Init(opts) => {
            crate::service::init_command_logging()?;
            let report = genesis::run(&opts)?;
            if opts.ceremony.is_none() {
                println!(
                    "this is a TEST consortium: this machine made every secret and the Groth16 trapdoor \
                     (consortium.toml says so); for patient data, run genesis across the institutions \
                     (keygen, ceremony, assemble, join: README)"
                );
            } else {
                println!(
                    "the Groth16 parameters come from the ceremony, but this machine made every member's keys: \
                     for patient data, run genesis across the institutions (keygen, assemble, join: README)"
                );
            }
            for p in &report.params_generated {
                println!("generated Groth16 parameters: {p}");
            }
            println!("consortium written to {}", opts.out.display());
            for (i, member, dir) in &report.nodes {
                println!(
                    "  node {i}: {:<12} dualchain node --config {}",
                    member.as_deref().unwrap_or("(validator)"),
                    dir.join("node.toml").display()
                );
            }
        }
        Command::Keygen(opts) => {
            let path = crate::genesis::institution::keygen(&opts)?;
            println!(
                "keys of {} made in {}/secrets (mode 0600; they never leave this machine)",
                opts.id,
                opts.dir.display()
            );
            println!("send {} to the coordinator (it names your attributes: not to every member)", path.display());
        }
        Command::Assemble(opts) => {
            crate::service::init_command_logging()?;
            let report = crate::genesis::assemble::assemble(&opts)?;
            if report.test_consortium {
                println!("this is a TEST consortium: its Groth16 parameters were made on this machine");
            }
            println!("consortium assembled in {} (public: send it to every institution)", opts.out.display());
            for (i, member) in &report.nodes {
                println!("  node {i}: {member}");
            }
            println!("the CAs' keys stay in {}/secrets", opts.ca.display());
        }
        Command::Join(opts) => {
            let node = crate::genesis::institution::join(&opts)?;
            println!("the consortium lists us as contributed: node {node}");
            println!("  dualchain node --config {}", opts.dir.join("node.toml").display());
        }
        Command::Renew(opts) => {
            let (serial, not_after) = crate::genesis::assemble::renew(&opts)?;
            println!("{}'s certificate renewed: serial {serial}, valid until {not_after} (UNIX s)", opts.member);
            println!("send {}/issued/{}.toml to {}", opts.genesis.display(), opts.member, opts.member);
        }
        Command::Issue(opts) => {
            let issued = crate::genesis::issue::issue(&opts)?;
            println!(
                "{}'s member certificate issued: serial {}, valid until {} (UNIX s), written to {}",
                issued.member,
                issued.serial,
                issued.not_after,
                issued.path.display()
            );
            println!("certificate SHA-256: {}", hex::encode(issued.certificate_sha256));
            println!(
                "{} joins once the consortium's membership quorum approved it: each member runs\n  \
                 dualchain client --config NODE_TOML admit-member --member {} --certificate-sha256 {}",
                issued.member,
                issued.member,
                hex::encode(issued.certificate_sha256)
            );
            println!(
                "its node is validator {}: send {} to {}, which runs `dualchain join`; then the validators \
                 add it (dualchain validator propose --add {})",
                issued.node,
                issued.path.display(),
                issued.member,
                issued.path.display()
            );
        }
        Command::InstallCertificate(opts) => {
            let (serial, not_after) = crate::genesis::institution::install_certificate(&opts)?;
            println!("certificate serial {serial} (valid until {not_after}, UNIX s) installed;");
            println!(
                "a running node registers it within {} s; it takes effect at that height",
                crate::agents::registration::RENEWAL_POLL.as_secs()
            );
        }
        Command::Node { config } => {
            let cfg = NodeConfig::load(&config)?;
            crate::service::init_logging(&cfg.log)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let ran = rt.block_on(crate::service::run(cfg));
            // Dropping a runtime waits for its blocking tasks without limit; a stopping
            // node waits a bounded time (SIGTERM stops it within API_DRAIN + STOP_MAX +
            // BLOCKING_DRAIN in any state).
            rt.shutdown_timeout(crate::service::BLOCKING_DRAIN);
            ran?;
        }
        Command::Ceremony(cmd) => {
            crate::service::init_command_logging()?;
            ceremony(cmd)?;
        }
        Command::Validator(cmd) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(validator(cmd))?;
        }
        Command::Client(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(client::run(args))?;
        }
        Command::LedgerRebuild { config } => {
            let cfg = NodeConfig::load(&config)?;
            let (applied, archived) = crate::service::clear_ledger(&cfg)?;
            println!(
                "ledger cleared (it had applied {}); the node re-applies {archived} archived batches when it starts",
                applied.map_or("nothing".to_string(), |s| format!("up to batch {s}"))
            );
        }
    }
    Ok(())
}
