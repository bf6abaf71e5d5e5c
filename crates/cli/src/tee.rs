//! `--tee simulated|sgx|tdx|snp|nitro|auto` of `sealbridge enclave` and `sealbridge node`
//! (issue 14): which TEE the enclave runs in, where its evidence and sealing root come from.
//!
//! - `simulated` (default): the INSECURE simulated TEE; the sealing root is a file.
//! - `sgx`: Gramine's `/dev/attestation` (a DCAP quote over the report data); the sealing root is
//!   Gramine's SGX sealing key bound to MRENCLAVE (`/dev/attestation/keys/_sgx_mrenclave`).
//! - `tdx`, `snp`: configfs-tsm (`/sys/kernel/config/tsm/report`); an SNP guest whose kernel
//!   has none asks `/dev/sev-guest` (`SNP_GET_REPORT`; TDX has no upstream quote ioctl). An SNP guest with
//!   `/dev/sev-guest` seals with the SEV-SNP derived key (VCEK-rooted, bound to the guest policy
//!   and launch measurement: `SNP_GET_DERIVED_KEY`); without that device, and in a TD (no
//!   sealing key at all), the root comes from the keyholders (`--custody`).
//! - `nitro`: the Nitro Secure Module (`/dev/nsm`); the root from the keyholders (`--custody`).
//! - `auto`: whichever one of those interfaces exists; none or several is an error, never a
//!   guess.
//!
//! `--tee-root DIR` puts every interface under `DIR` instead of `/` (tests use fake trees).
//! At start the process asks its TEE for one piece of evidence and reads the measurement it
//! reports (unverified: the verifiers appraise the real thing at registration); that is the
//! measurement the enclave describes and the registry must allow.

use std::path::{Path, PathBuf};

use alloy_primitives::B256;
use anyhow::{Context, bail};
use sealbridge_attest::TeeKind;
use sealbridge_attest::provider::{EvidenceProvider, gramine::Gramine, tsm::ConfigfsTsm};

/// The TEE to run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TeeChoice {
    /// The INSECURE simulated TEE (development).
    Simulated,
    /// Intel SGX through Gramine.
    Sgx,
    /// Intel TDX through configfs-tsm.
    Tdx,
    /// AMD SEV-SNP through configfs-tsm.
    Snp,
    /// AWS Nitro Enclaves through the Nitro Secure Module.
    Nitro,
    /// Detect the TEE; refuse when none or several interfaces exist.
    Auto,
}

/// `--tee` and `--tee-root`.
#[derive(Debug, Clone, clap::Args)]
pub struct TeeArgs {
    /// The TEE the enclave runs in (docs/ATTESTATION.md "Running in a TEE").
    #[arg(long, value_enum, default_value = "simulated")]
    pub tee: TeeChoice,
    /// Look for the TEE's interfaces under this directory instead of `/` (fake trees in tests).
    #[arg(long, value_name = "DIR")]
    pub tee_root: Option<PathBuf>,
}

/// What the process runs in, once set up.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The TEE.
    pub kind: TeeKind,
    /// The measurement its evidence reports.
    pub measurement: B256,
    /// The hardware sealing root (SGX, SNP with `/dev/sev-guest`); `None`: the keyholders' (or
    /// the simulated file).
    pub sealing_root: Option<[u8; 32]>,
}

const GRAMINE: &str = "dev/attestation";
const TSM: &str = "sys/kernel/config/tsm/report";
const NSM: &str = "dev/nsm";
const SEV_GUEST: &str = "dev/sev-guest";
/// The report data of the evidence read at start to learn the measurement.
const SELF_MEASURE: &[u8] = b"sealbridge/v1/self-measurement";

fn under(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

/// Which TEE interfaces exist under `root`.
pub fn detect(root: &Path) -> Vec<(TeeKind, PathBuf)> {
    let mut found = Vec::new();
    let gramine = under(root, GRAMINE);
    if gramine.join("attestation_type").exists() {
        found.push((TeeKind::Sgx, gramine));
    }
    let tsm = under(root, TSM);
    if tsm.is_dir() {
        match tsm_provider(&tsm) {
            Some("tdx_guest") => found.push((TeeKind::Tdx, tsm)),
            Some("sev_guest") => found.push((TeeKind::Snp, tsm)),
            _ => {}
        }
    }
    // An SNP guest whose kernel has no configfs-tsm: reports through the guest device's ioctl.
    let sev = under(root, SEV_GUEST);
    if sev.exists() && !found.iter().any(|(k, _)| *k == TeeKind::Snp) {
        found.push((TeeKind::Snp, sev));
    }
    let nsm = under(root, NSM);
    if nsm.exists() {
        found.push((TeeKind::Nitro, nsm));
    }
    found
}

/// The provider configfs-tsm names for our report entry (created if missing).
fn tsm_provider(tsm: &Path) -> Option<&'static str> {
    let entry = tsm.join("sealbridge");
    if !entry.is_dir() {
        std::fs::create_dir(&entry).ok()?;
    }
    let p = std::fs::read_to_string(entry.join("provider")).ok()?;
    match p.trim() {
        "tdx_guest" => Some("tdx_guest"),
        "sev_guest" => Some("sev_guest"),
        _ => None,
    }
}

/// Resolve `--tee`, build the provider, read the measurement, install the platform into the
/// enclave code of this process. `None` for the simulated TEE. With `custody` (the keyholders
/// hold the root) the TEE's own sealing key is not derived: an SNP guest does not ask its Secure
/// Processor for a key it will not use.
///
/// # Errors
/// No interface, several with `auto`, a provider that fails or answers another TEE's evidence,
/// evidence whose measurement cannot be read, a missing SGX sealing key.
pub fn setup(args: &TeeArgs, custody: bool) -> anyhow::Result<Option<Platform>> {
    let root = args.tee_root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let kind = match args.tee {
        TeeChoice::Simulated => return Ok(None),
        TeeChoice::Sgx => TeeKind::Sgx,
        TeeChoice::Tdx => TeeKind::Tdx,
        TeeChoice::Snp => TeeKind::Snp,
        TeeChoice::Nitro => TeeKind::Nitro,
        TeeChoice::Auto => {
            let found = detect(&root);
            match found.as_slice() {
                [(kind, path)] => {
                    eprintln!("--tee auto: found {} at {}", kind.name(), path.display());
                    *kind
                }
                [] => bail!(
                    "--tee auto: no TEE interface under {} (looked for {GRAMINE}/attestation_type, \
                     {TSM} with a tdx_guest or sev_guest provider, {NSM}); pass --tee simulated \
                     for development",
                    root.display()
                ),
                many => bail!(
                    "--tee auto: several TEE interfaces under {} ({}): name one with --tee",
                    root.display(),
                    many.iter()
                        .map(|(k, p)| format!("{} at {}", k.name(), p.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let mut provider: Box<dyn EvidenceProvider + Send> = match kind {
        TeeKind::Sgx => Box::new(Gramine::new(under(&root, GRAMINE))),
        TeeKind::Tdx => Box::new(ConfigfsTsm::new(under(&root, TSM), "sealbridge")),
        TeeKind::Snp if !under(&root, TSM).is_dir() => snp_ioctl_provider(&root)?,
        TeeKind::Snp => {
            // Ask for reports at the lowest VMPL this guest may request (`privlevel_floor`, the
            // kernel's), explicitly: the report's VMPL is also the VMPL our sealing key is derived
            // for, and an item left at a weaker level by someone else must not choose it.
            let mut tsm = ConfigfsTsm::new(under(&root, TSM), "sealbridge");
            let floor = under(&root, TSM).join("sealbridge/privlevel_floor");
            if let Ok(text) = std::fs::read_to_string(&floor) {
                let level: u8 = text
                    .trim()
                    .parse()
                    .with_context(|| format!("--tee snp: {} is not a VMPL", floor.display()))?;
                tsm.privlevel = Some(level);
            }
            Box::new(tsm)
        }
        TeeKind::Nitro => nitro_provider(&root)?,
        TeeKind::Simulated => unreachable!("returned above"),
    };
    let mut report_data = [0u8; 64];
    report_data[..SELF_MEASURE.len()].copy_from_slice(SELF_MEASURE);
    let evidence = provider
        .evidence(&report_data)
        .with_context(|| format!("--tee {}: asking the TEE for evidence", kind.name()))?;
    if evidence.tee() != kind {
        bail!(
            "--tee {}: the interface answered {} evidence",
            kind.name(),
            evidence.tee().name()
        );
    }
    let measurement =
        sealbridge_attest::inspect::claimed_measurement(&evidence).with_context(|| {
            format!(
                "--tee {}: reading the measurement of its evidence",
                kind.name()
            )
        })?;
    let sealing_root = match kind {
        TeeKind::Sgx => Some(sgx_sealing_root(&under(&root, GRAMINE))?),
        TeeKind::Snp if !custody => snp_sealing_root(&root, &evidence)?,
        _ => None,
    };
    let measurement = B256::from(measurement.0);
    sealbridge_enclave::platform::install(kind, measurement, provider)
        .map_err(|e| anyhow::anyhow!("--tee {}: {e}", kind.name()))?;
    Ok(Some(Platform {
        kind,
        measurement,
        sealing_root,
    }))
}

/// Gramine's SGX sealing key bound to MRENCLAVE (16 bytes), expanded to the 32-byte sealing
/// root: `HKDF-SHA256(salt = "sealbridge/v1/sgx-sealing-root", ikm = key)`.
fn sgx_sealing_root(gramine: &Path) -> anyhow::Result<[u8; 32]> {
    let path = gramine.join("keys/_sgx_mrenclave");
    let key = std::fs::read(&path).with_context(|| {
        format!(
            "--tee sgx: reading the SGX sealing key {} (Gramine exposes it inside the enclave)",
            path.display()
        )
    })?;
    if key.len() != 16 {
        bail!(
            "--tee sgx: {} holds {} bytes, not a 16-byte SGX key",
            path.display(),
            key.len()
        );
    }
    Ok(*sealbridge_seal::at_rest::hkdf_sha256(
        &key,
        &[sealbridge_proto::contexts::SGX_SEALING_ROOT_LABEL],
    ))
}

/// Whether an enclave of `kind` under `root` gets a sealing key from its TEE (SGX always, through
/// Gramine; SNP when the guest has `/dev/sev-guest`); otherwise the keyholders hold its root.
pub fn has_sealing_key(kind: TeeKind, root: &Path) -> bool {
    match kind {
        TeeKind::Sgx => true,
        TeeKind::Snp => under(root, SEV_GUEST).exists(),
        _ => false,
    }
}

/// The SEV-SNP derived key (VCEK-rooted, bound to the guest policy and launch measurement) for
/// the VMPL our own report was requested from, expanded to the sealing root:
/// `HKDF-SHA256(salt = "sealbridge/v1/snp-sealing-root", ikm = key)`. `None` when the guest has
/// no `/dev/sev-guest` (the keyholders then hold the root).
fn snp_sealing_root(
    root: &Path,
    evidence: &sealbridge_attest::Evidence,
) -> anyhow::Result<Option<[u8; 32]>> {
    let device = under(root, SEV_GUEST);
    if !device.exists() {
        return Ok(None);
    }
    if root != Path::new("/") {
        bail!(
            "--tee snp: {} exists under --tee-root, but SNP_GET_DERIVED_KEY is an ioctl on \
             /dev/sev-guest that a fake tree cannot answer (without the device the sealing root \
             comes from the keyholders)",
            device.display()
        );
    }
    let sealbridge_attest::Evidence::Snp(report) = evidence else {
        bail!("--tee snp: the interface answered no SEV-SNP report");
    };
    // VMPL of the requester, SEV-SNP ABI ATTESTATION_REPORT offset 0x30 (u32 LE).
    let vmpl = report
        .get(0x30..0x34)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .context("--tee snp: the report is too short to hold its VMPL")?;
    let key = snp_derived_key(vmpl)?;
    Ok(Some(*sealbridge_seal::at_rest::hkdf_sha256(
        &key,
        &[sealbridge_proto::contexts::SNP_SEALING_ROOT_LABEL],
    )))
}

/// SEV-SNP evidence where the kernel has no configfs-tsm: `SNP_GET_REPORT` on `/dev/sev-guest`
/// at VMPL 0 (a guest under an SVSM has configfs-tsm in every kernel that supports one).
#[cfg(feature = "snp")]
fn snp_ioctl_provider(root: &Path) -> anyhow::Result<Box<dyn EvidenceProvider + Send>> {
    use sealbridge_attest::provider::sev_guest::{SevGuestDevice, SevGuestReports};
    let device = under(root, SEV_GUEST);
    if root != Path::new("/") && device.exists() {
        bail!(
            "--tee snp: no configfs-tsm under {}, and SNP_GET_REPORT on {} is an ioctl that a \
             fake tree cannot answer",
            root.display(),
            device.display()
        );
    }
    if !device.exists() {
        bail!(
            "--tee snp: neither {TSM} (configfs-tsm) nor {SEV_GUEST} under {}",
            root.display()
        );
    }
    Ok(Box::new(SevGuestReports::new(Box::new(SevGuestDevice), 0)))
}

#[cfg(not(feature = "snp"))]
fn snp_ioctl_provider(root: &Path) -> anyhow::Result<Box<dyn EvidenceProvider + Send>> {
    bail!(
        "--tee snp: no configfs-tsm under {}, and this build has no /dev/sev-guest driver \
         (build with --features snp)",
        root.display()
    )
}

#[cfg(feature = "snp")]
fn snp_derived_key(vmpl: u32) -> anyhow::Result<[u8; 32]> {
    use sealbridge_attest::provider::sev_guest::{SevGuestDevice, sealing_key};
    sealing_key(&mut SevGuestDevice, vmpl)
        .context("--tee snp: deriving the sealing key from the AMD Secure Processor")
}

#[cfg(not(feature = "snp"))]
fn snp_derived_key(_vmpl: u32) -> anyhow::Result<[u8; 32]> {
    bail!(
        "--tee snp: this build cannot ask /dev/sev-guest for its sealing key (build with \
         --features snp)"
    )
}

#[cfg(feature = "nitro")]
fn nitro_provider(root: &Path) -> anyhow::Result<Box<dyn EvidenceProvider + Send>> {
    use sealbridge_attest::provider::nsm::{Nsm, NsmSocket};
    if root == Path::new("/") {
        return Ok(Box::new(Nsm::default()));
    }
    // A fake tree: the NSM driver's ioctl cannot be faked, so DIR/dev/nsm is a Unix socket that
    // answers the same CBOR messages (tests).
    let fake = under(root, NSM);
    let is_socket = std::fs::metadata(&fake)
        .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        .unwrap_or(false);
    if !is_socket {
        bail!(
            "--tee nitro --tee-root {}: {} is not a fake NSM socket (the real driver opens \
             /dev/nsm)",
            root.display(),
            fake.display()
        );
    }
    Ok(Box::new(Nsm::with_transport(Box::new(NsmSocket::new(
        fake,
    )))))
}

#[cfg(not(feature = "nitro"))]
fn nitro_provider(_root: &Path) -> anyhow::Result<Box<dyn EvidenceProvider + Send>> {
    bail!("--tee nitro: this build has no NSM driver (build with --features nitro)")
}
