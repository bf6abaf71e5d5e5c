//! `sealbridge bench`: throughput and gas figures measured in one run, for notes and docs (never
//! pass/fail). Complements the criterion benches (`cargo bench -p sealbridge-seal`, `-p
//! sealbridge-log`, `-p sealbridge-attest`).

use std::{process::ExitCode, time::Instant};

use alloy_primitives::Address;
use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, Request, Response},
};
use sealbridge_programs::netting::{Netting, NettingConfig, Obligation, Participant};
use sealbridge_proto::{EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, Suite, TraceId};
use sealbridge_seal::{
    envelope::{Recipient, RecipientSecret, SealedEnvelope, seal_to},
    hpke::{danger, xwing::XWingSecretKey},
    keys::{Ed25519SigningKey, KemSecretKey},
};
use serde::Serialize;

/// Arguments of `sealbridge bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Envelopes pushed through the enclave for the throughput figure.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    pub envelopes: u32,
    /// Operations per figure of the KEM and envelope cost table (X25519 beside X-Wing).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub kem_ops: u32,
    /// Raw X25519 Diffie-Hellman operations for the comparison figure.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    pub dh_ops: u32,
    /// Batch sizes to measure settlement gas at (runs `sealbridge demo` once per size).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16u32, 256, 1024])]
    pub batch_sizes: Vec<u32>,
    /// Participants in the gas runs (one net effect each per batch, at most).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub participants: u32,
    /// Obligations in each gas run (at least the largest batch size, so every size settles
    /// full batches).
    #[arg(long, default_value_t = 4096)]
    pub obligations: u32,
    /// Skip the gas runs.
    #[arg(long)]
    pub no_gas: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct GasAtBatchSize {
    batch_size: u32,
    batches: u64,
    inputs: u64,
    gas_per_batch: u64,
    gas_per_input: u64,
}

/// The enclave path with envelopes of one suite.
#[derive(Debug, Serialize)]
struct SuiteThroughput {
    suite: Suite,
    envelopes_per_sec: f64,
    us_per_envelope: f64,
    /// Bytes of one envelope of this suite (the benchmark's obligation).
    envelope_bytes: usize,
}

/// Cost of one operation, in microseconds, for one KEM (and its suite's envelope).
#[derive(Debug, Serialize)]
struct KemCost {
    suite: Suite,
    /// Key pair from a seed (X25519: `DeriveKeyPair`; X-Wing: SHAKE-256 expansion, ML-KEM-768
    /// KeyGen, X25519).
    keygen_us: f64,
    encaps_us: f64,
    decaps_us: f64,
    /// Whole envelope: sender signature, HPKE seal, COSE encoding.
    envelope_seal_us: f64,
    /// Whole envelope: parse, HPKE open, sender signature check.
    envelope_open_us: f64,
    public_key_bytes: usize,
    enc_bytes: usize,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    envelopes: u32,
    /// Full enclave path per envelope: parse, HPKE open, sender signature, replay set, program,
    /// sealing at rest, receipt signature, log append, and batch statements every 1024 inputs.
    /// With the default suite (X25519/AES-128-GCM); `suites` has every suite.
    enclave_envelopes_per_sec: f64,
    enclave_us_per_envelope: f64,
    /// The same enclave path for each registered suite, in one run.
    suites: Vec<SuiteThroughput>,
    /// Per-operation cost of each suite's KEM and envelope, in one run.
    kem: Vec<KemCost>,
    x25519_dh_per_sec: f64,
    x25519_us_per_dh: f64,
    gas: Vec<GasAtBatchSize>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if !args.no_gas {
        if let Some(max) = args.batch_sizes.iter().max()
            && args.obligations < *max
        {
            bail!(
                "--obligations ({}) must be at least the largest batch size ({max})",
                args.obligations
            );
        }
        if args.batch_sizes.contains(&0) {
            bail!("batch sizes must be positive");
        }
    }
    let say = |s: &str| {
        if !args.json {
            eprintln!("==> {s}");
        }
    };
    say(&format!(
        "enclave path: {} envelopes, one core",
        args.envelopes
    ));
    let mut suites = Vec::new();
    for suite in Suite::ALL {
        say(&format!("enclave path with {suite}"));
        let (secs, accepted, envelope_bytes) = enclave_path(args.envelopes, suite)?;
        if accepted != args.envelopes {
            bail!(
                "only {accepted} of {} benchmark envelopes ({suite}) were accepted",
                args.envelopes
            );
        }
        suites.push(SuiteThroughput {
            suite,
            envelopes_per_sec: f64::from(args.envelopes) / secs,
            us_per_envelope: secs * 1e6 / f64::from(args.envelopes),
            envelope_bytes,
        });
    }
    let enclave_secs = suites
        .first()
        .map(|s| s.us_per_envelope * f64::from(args.envelopes) / 1e6)
        .context("no suite measured")?;
    say(&format!(
        "KEM and envelope cost: {} operations each, X25519 beside X-Wing",
        args.kem_ops
    ));
    let kem = [Suite::X25519Sha256Aes128Gcm, Suite::XWingAes256Gcm]
        .into_iter()
        .map(|s| kem_cost(s, args.kem_ops))
        .collect::<anyhow::Result<Vec<_>>>()?;
    say(&format!(
        "raw X25519: {} Diffie-Hellman operations",
        args.dh_ops
    ));
    let dh_secs = x25519(args.dh_ops)?;
    let mut gas = Vec::new();
    if !args.no_gas {
        for &bs in &args.batch_sizes {
            say(&format!("gas: demo with batch size {bs}"));
            gas.push(gas_at(bs, args.participants, args.obligations)?);
        }
    }
    let report = BenchReport {
        envelopes: args.envelopes,
        enclave_envelopes_per_sec: f64::from(args.envelopes) / enclave_secs,
        enclave_us_per_envelope: enclave_secs * 1e6 / f64::from(args.envelopes),
        suites,
        kem,
        x25519_dh_per_sec: f64::from(args.dh_ops) / dh_secs,
        x25519_us_per_dh: dh_secs * 1e6 / f64::from(args.dh_ops),
        gas,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "enclave path       {:>10.0} envelopes/s per core  ({:.1} µs each)",
            report.enclave_envelopes_per_sec, report.enclave_us_per_envelope
        );
        for s in &report.suites {
            println!(
                "  {:<32}{:>10.0} envelopes/s per core  ({:.1} µs each, {} B)",
                s.suite.as_str(),
                s.envelopes_per_sec,
                s.us_per_envelope,
                s.envelope_bytes
            );
        }
        println!(
            "raw X25519 DH      {:>10.0} ops/s                 ({:.1} µs each)",
            report.x25519_dh_per_sec, report.x25519_us_per_dh
        );
        println!();
        println!(
            "µs per operation                  keygen   encaps   decaps   seal env   open env   pk B   enc B"
        );
        for k in &report.kem {
            println!(
                "  {:<32}{:>7.1}{:>9.1}{:>9.1}{:>11.1}{:>11.1}{:>7}{:>8}",
                k.suite.as_str(),
                k.keygen_us,
                k.encaps_us,
                k.decaps_us,
                k.envelope_seal_us,
                k.envelope_open_us,
                k.public_key_bytes,
                k.enc_bytes
            );
        }
        if !report.gas.is_empty() {
            println!();
            println!("batch size   batches    gas/batch    gas/input");
            for g in &report.gas {
                println!(
                    "{:>10}{:>10}{:>13}{:>13}",
                    g.batch_size, g.batches, g.gas_per_batch, g.gas_per_input
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Seal `n` obligations with `suite` first (client work, not timed), then time the enclave on
/// all of them: `(seconds, accepted, bytes of one envelope)`.
fn enclave_path(n: u32, suite: Suite) -> anyhow::Result<(f64, u32, usize)> {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let token = Address::repeat_byte(0xee);
    let users: Vec<(Ed25519SigningKey, Address)> = (1..=8u8)
        .map(|i| {
            (
                Ed25519SigningKey::generate(&mut rng),
                Address::repeat_byte(i),
            )
        })
        .collect();
    let policy = EnclavePolicy::new(
        NettingConfig {
            participants: users
                .iter()
                .map(|(k, a)| Participant {
                    sender: k.public().sender_id(),
                    account: *a,
                })
                .collect(),
            tokens: vec![token],
        },
        1024,
    );
    let now = 1_700_000_000;
    let mut enclave = Enclave::boot(
        policy.clone(),
        Netting::new(&policy.netting),
        SettlementTarget {
            chain_id: 31337,
            settlement: Address::repeat_byte(0x5e),
        },
        Box::new(rand_core::OsRng),
        now,
    )?;
    for (_, a) in &users {
        enclave.handle(Request::Chain(ChainEvent::Deposit {
            account: *a,
            token,
            amount: u128::from(n) * 10,
        }));
    }
    let desc = match enclave.handle(Request::Describe) {
        Response::Description(d) => *d,
        other => bail!("unexpected enclave response {other:?}"),
    };
    let addressing = crate::demo::client::Addressing::from_description(&desc)?;
    let recipient = addressing.recipient(suite)?;
    let envelopes: Vec<Vec<u8>> = (0..n as usize)
        .map(|i| {
            let (key, _) = &users[i % users.len()];
            let to = users[(i + 1) % users.len()].1;
            let mut header = EnvelopeHeader::new(
                addressing.instance,
                addressing.epoch,
                ProgramId::new(desc.program_id.0),
                Nonce::new(rng.r#gen()),
                now + 3600,
                TraceId::new(rng.r#gen()),
            );
            header.suite = suite;
            let ob = Obligation {
                to,
                token,
                amount: 1,
            };
            seal_to(&header, recipient, key, &ob.encode(), &mut rng)
                .context("sealing a benchmark envelope")
        })
        .collect::<anyhow::Result<_>>()?;
    let envelope_bytes = envelopes.first().map_or(0, Vec::len);
    let start = Instant::now();
    let mut accepted = 0;
    for envelope in envelopes {
        if let Response::Submitted(o) = enclave.handle(Request::Submit { envelope, now }) {
            accepted += u32::from(o.rejected.is_none());
        }
        // The host drains the log outbox as it goes, as a node does.
        if accepted % 1024 == 0 {
            enclave.handle(Request::LogEntries);
        }
    }
    Ok((start.elapsed().as_secs_f64(), accepted, envelope_bytes))
}

/// Microseconds per call of `f` over `n` calls.
fn per_op(n: u32, mut f: impl FnMut(u32) -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let start = Instant::now();
    for i in 0..n {
        f(i)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

/// Keygen, encapsulation, decapsulation and whole-envelope seal/open of `suite`'s KEM.
fn kem_cost(suite: Suite, n: u32) -> anyhow::Result<KemCost> {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let sender = Ed25519SigningKey::generate(&mut rng);
    let mut header = EnvelopeHeader::new(
        InstanceId::new([1; 32]),
        Epoch(1),
        ProgramId::new([2; 32]),
        Nonce::new([3; 16]),
        1_800_000_000,
        TraceId::new([4; 16]),
    );
    header.suite = suite;
    let payload = Obligation {
        to: Address::repeat_byte(9),
        token: Address::repeat_byte(0xee),
        amount: 1,
    }
    .encode();
    let seed = |i: u32| {
        let mut s = [7u8; 32];
        s[..4].copy_from_slice(&i.to_be_bytes());
        s
    };
    let bad = |e: sealbridge_seal::Error| anyhow::anyhow!("{suite}: {e}");
    if suite == Suite::XWingAes256Gcm {
        let keygen_us = per_op(n, |i| {
            std::hint::black_box(XWingSecretKey::from_seed(seed(i)));
            Ok(())
        })?;
        let sk = XWingSecretKey::from_seed(seed(0));
        let (_, ct) = danger::xwing_encap_derand(sk.public(), &[5; 64]).map_err(bad)?;
        let encaps_us = per_op(n, |i| {
            let mut e = [5u8; 64];
            e[..4].copy_from_slice(&i.to_be_bytes());
            std::hint::black_box(danger::xwing_encap_derand(sk.public(), &e).map_err(bad)?);
            Ok(())
        })?;
        let decaps_us = per_op(n, |_| {
            std::hint::black_box(danger::xwing_decap(&ct[..], &sk).map_err(bad)?);
            Ok(())
        })?;
        let mut envs = Vec::with_capacity(n as usize);
        let envelope_seal_us = per_op(n, |_| {
            envs.push(
                seal_to(
                    &header,
                    Recipient::XWing(sk.public()),
                    &sender,
                    &payload,
                    &mut rng,
                )
                .map_err(bad)?,
            );
            Ok(())
        })?;
        let envelope_open_us = per_op(n, |i| {
            let env = SealedEnvelope::parse(&envs[i as usize]).map_err(bad)?;
            env.open_with(RecipientSecret::XWing(&sk))
                .map_err(|e| anyhow::anyhow!("{suite}: {e}"))?;
            Ok(())
        })?;
        Ok(KemCost {
            suite,
            keygen_us,
            encaps_us,
            decaps_us,
            envelope_seal_us,
            envelope_open_us,
            public_key_bytes: sk.public().as_bytes().len(),
            enc_bytes: ct.len(),
        })
    } else {
        let keygen_us = per_op(n, |i| {
            std::hint::black_box(KemSecretKey::derive(&seed(i)));
            Ok(())
        })?;
        let (sk, pk) = KemSecretKey::derive(&seed(0));
        let (_, enc) = danger::encap_derand(&pk, &[5; 32]).map_err(bad)?;
        let encaps_us = per_op(n, |i| {
            std::hint::black_box(danger::encap_derand(&pk, &seed(i)).map_err(bad)?);
            Ok(())
        })?;
        let decaps_us = per_op(n, |_| {
            std::hint::black_box(danger::decap(&enc, &sk).map_err(bad)?);
            Ok(())
        })?;
        let mut envs = Vec::with_capacity(n as usize);
        let envelope_seal_us = per_op(n, |_| {
            envs.push(
                seal_to(&header, Recipient::X25519(&pk), &sender, &payload, &mut rng)
                    .map_err(bad)?,
            );
            Ok(())
        })?;
        let envelope_open_us = per_op(n, |i| {
            let env = SealedEnvelope::parse(&envs[i as usize]).map_err(bad)?;
            env.open_with(RecipientSecret::X25519(&sk))
                .map_err(|e| anyhow::anyhow!("{suite}: {e}"))?;
            Ok(())
        })?;
        Ok(KemCost {
            suite,
            keygen_us,
            encaps_us,
            decaps_us,
            envelope_seal_us,
            envelope_open_us,
            public_key_bytes: 32,
            enc_bytes: enc.len(),
        })
    }
}

fn x25519(n: u32) -> anyhow::Result<f64> {
    use aws_lc_rs::agreement::{PrivateKey, UnparsedPublicKey, X25519, agree};
    let ours = PrivateKey::generate(&X25519).map_err(|_| anyhow::anyhow!("X25519 keygen"))?;
    let theirs = PrivateKey::generate(&X25519).map_err(|_| anyhow::anyhow!("X25519 keygen"))?;
    let public = theirs
        .compute_public_key()
        .map_err(|_| anyhow::anyhow!("X25519 public key"))?;
    let peer = UnparsedPublicKey::new(&X25519, public.as_ref().to_vec());
    let start = Instant::now();
    let mut acc = 0u8;
    for _ in 0..n {
        acc ^= agree(&ours, peer.clone(), (), |s| Ok(s[0]))
            .map_err(|_| anyhow::anyhow!("X25519 agreement"))?;
    }
    std::hint::black_box(acc);
    Ok(start.elapsed().as_secs_f64())
}

fn gas_at(batch_size: u32, participants: u32, obligations: u32) -> anyhow::Result<GasAtBatchSize> {
    let exe = std::env::current_exe().context("locating the sealbridge binary")?;
    let out = std::process::Command::new(exe)
        .args([
            "demo",
            "--json",
            "--bad",
            "0",
            "--participants",
            &participants.to_string(),
            "--obligations",
            &obligations.to_string(),
            "--batch-size",
            &batch_size.to_string(),
            // Gas per input of full batches only: no lone input flushed alone.
            "--no-lone-input",
        ])
        .output()
        .context("running sealbridge demo")?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "demo output is not JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if !out.status.success() {
        bail!("the demo at batch size {batch_size} failed its checks: {report}");
    }
    let settle = &report["gas"]["settle"];
    let num = |v: &serde_json::Value| v.as_u64().context("missing gas figure");
    Ok(GasAtBatchSize {
        batch_size,
        batches: num(&report["batches_settled"])?,
        inputs: num(&report["inputs_settled"])?,
        gas_per_batch: num(&settle["per_call"])?,
        gas_per_input: num(&settle["per_input"])?,
    })
}
