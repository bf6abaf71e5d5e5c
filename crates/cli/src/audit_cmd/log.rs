//! `sealbridge log proof|verify`, and fetching a log over plain HTTP for `sealbridge audit --log`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use alloy_primitives::Address;
use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand};
use sealbridge_audit::proof::{InclusionBundle, ProofError, prove};
use sealbridge_log::{
    Checkpoint,
    tile::{TILE_WIDTH, entries_path, hashes_at_level, tile_levels, tile_path, tile_width},
};
use serde_json::json;

/// Largest file fetched over HTTP (a full tile is 8 KiB, a full bundle ≤ 16 MiB).
const MAX_FETCH: u64 = 16 << 20;
/// Largest bundle or `enclave.json` read.
const MAX_FILE: u64 = 1 << 20;

/// `sealbridge log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// An entry (e.g. a receipt, by its sequence) with its inclusion proof against the log's
    /// latest checkpoint.
    Proof(ProofArgs),
    /// Verify a bundle written by `sealbridge log proof`.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct ProofArgs {
    /// The log directory (C2SP tiles and `checkpoint`), or an export directory holding `log/`.
    #[arg(long)]
    dir: PathBuf,
    /// Log index of the entry (a receipt's `sequence`).
    #[arg(long)]
    sequence: u64,
    /// Write the bundle here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the bundle as JSON (the default when `--out` is given is the file only).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The bundle (JSON).
    #[arg(long)]
    bundle: PathBuf,
    /// `enclave.json` of an export: the Ed25519 key, chain id and settlement address (the key
    /// must be the one the registry attested; `sealbridge audit` checks that).
    #[arg(long, conflicts_with_all = ["key", "origin"])]
    enclave: Option<PathBuf>,
    /// The enclave's Ed25519 public key (64 hex digits).
    #[arg(long, requires = "origin")]
    key: Option<String>,
    /// The log origin, `sealbridge/<chain id>/<settlement address>`.
    #[arg(long, requires = "key")]
    origin: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run `sealbridge log …`.
pub fn run(args: &LogArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        LogCommand::Proof(a) => proof(a),
        LogCommand::Verify(a) => verify(a),
    }
}

fn proof(a: &ProofArgs) -> anyhow::Result<ExitCode> {
    let dir = super::log_dir_of(&a.dir);
    let bundle = prove(&dir, a.sequence)?;
    let text = serde_json::to_string_pretty(&bundle)? + "\n";
    match &a.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            if a.json {
                print!("{text}");
            } else {
                eprintln!(
                    "wrote the inclusion proof of entry {} ({} hashes) to {}",
                    a.sequence,
                    bundle.proof.len(),
                    path.display()
                );
            }
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn read_small(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        meta.len() <= MAX_FILE,
        "{}: larger than {MAX_FILE} bytes",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn key_and_origin(a: &VerifyArgs) -> anyhow::Result<([u8; 32], String)> {
    let (key_hex, origin) = match (&a.enclave, &a.key, &a.origin) {
        (Some(path), _, _) => {
            let v: serde_json::Value = serde_json::from_slice(&read_small(path)?)
                .with_context(|| format!("{}: not JSON", path.display()))?;
            let field = |k: &str| {
                v.get(k)
                    .with_context(|| format!("{}: no `{k}`", path.display()))
            };
            let chain_id = field("chain_id")?.as_u64().context("chain_id")?;
            let settlement: Address = field("settlement")?
                .as_str()
                .context("settlement")?
                .parse()
                .context("settlement address")?;
            let key = field("ed25519_public_key")?
                .as_str()
                .context("ed25519_public_key")?
                .to_string();
            (
                key,
                sealbridge_enclave::checkpoint::log_origin(chain_id, settlement),
            )
        }
        (None, Some(k), Some(o)) => (k.clone(), o.clone()),
        _ => bail!("give --enclave FILE, or --key and --origin"),
    };
    let key: [u8; 32] = hex::decode(key_hex.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("the Ed25519 key must be 32 bytes of hex")?;
    Ok((key, origin))
}

fn verify(a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let (key, origin) = key_and_origin(a)?;
    let bundle = match InclusionBundle::from_json(&read_small(&a.bundle)?) {
        Ok(b) => b,
        Err(e) => bail!("{}: {e}", a.bundle.display()),
    };
    let outcome = bundle.verify(&origin, &key);
    let ok = outcome.is_ok();
    if a.json {
        let v = match &outcome {
            Ok(v) => json!({
                "verified": true,
                "sequence": bundle.sequence,
                "entry": v.entry.kind(),
                "checkpoint_size": v.checkpoint.size,
                "checkpoint_root": v.checkpoint.root,
                "receipt": v.receipt.map(|r| json!({
                    "envelope_id": r.envelope_id,
                    "status": match r.status {
                        sealbridge_seal::receipt::ReceiptStatus::Accepted => "accepted".to_string(),
                        sealbridge_seal::receipt::ReceiptStatus::Rejected(c) => format!("rejected: {}", c.as_str()),
                    },
                    "enclave_time": r.enclave_time,
                })),
            }),
            Err(e) => {
                json!({"verified": false, "sequence": bundle.sequence, "error": e.to_string(), "rule": rule(e)})
            }
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        match &outcome {
            Ok(v) => println!(
                "entry {} ({}) is in the log of {origin} at size {} (root {})",
                bundle.sequence,
                v.entry.kind(),
                v.checkpoint.size,
                v.checkpoint.root
            ),
            Err(e) => println!("entry {} does NOT verify: {e}", bundle.sequence),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn rule(e: &ProofError) -> &'static str {
    match e {
        ProofError::Malformed(_) => "malformed",
        ProofError::Checkpoint(_) => "checkpoint",
        ProofError::Inclusion(_) => "inclusion",
        ProofError::Entry(_) => "entry",
        _ => "other",
    }
}

/// Download the checkpoint and every tile and entry bundle of its tree from an `http(s)://` prefix
/// (c2sp.org/tlog-tiles) into `dir`. Nothing is trusted: the auditor verifies what it fetched.
pub fn fetch(url: &str, dir: &Path) -> anyhow::Result<()> {
    fetch_at_most(url, dir, u64::MAX)
}

/// [`fetch`], refusing (before fetching any tile) a checkpoint that claims more than
/// `max_entries` entries: the checkpoint is not verified yet, so its size must not decide how
/// much is downloaded.
pub fn fetch_at_most(url: &str, dir: &Path, max_entries: u64) -> anyhow::Result<()> {
    let prefix = url.trim_end_matches('/');
    let note = get(&format!("{prefix}/checkpoint"))?;
    let text = std::str::from_utf8(&note).context("checkpoint is not UTF-8")?;
    let body_end = text
        .find("\n\n")
        .context("checkpoint is not a signed note")?;
    let cp = Checkpoint::from_note_body(text.get(..=body_end).unwrap_or_default())
        .context("checkpoint body")?;
    ensure!(
        cp.size <= max_entries,
        "the checkpoint claims {} entries, more than the {max_entries} accepted: nothing fetched",
        cp.size
    );
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("checkpoint"), &note)?;
    // Generated as they are fetched: the (unverified) size must not decide how much memory is
    // taken before the first missing tile stops the fetch.
    let size = cp.size;
    let hash_tiles = (0..tile_levels(size)).flat_map(move |level| {
        (0..hashes_at_level(size, level).div_ceil(TILE_WIDTH))
            .map(move |n| tile_path(level, n, tile_width(size, level, n)))
    });
    let bundles =
        (0..size.div_ceil(TILE_WIDTH)).map(move |n| entries_path(n, tile_width(size, 0, n)));
    let paths = hash_tiles.chain(bundles);
    let total = usize::try_from(
        (0..tile_levels(size))
            .map(|level| hashes_at_level(size, level).div_ceil(TILE_WIDTH))
            .sum::<u64>()
            .saturating_add(size.div_ceil(TILE_WIDTH)),
    )
    .unwrap_or(usize::MAX);
    // Progress on a terminal (a million-entry log is ~8,000 tiles).
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr()) && total > 64;
    let started = std::time::Instant::now();
    let mut bytes_total = 0usize;
    for (i, p) in paths.enumerate() {
        // A partial tile the log has since completed may be gone: the full tile stands for it
        // (c2sp.org/tlog-tiles; the reader takes a wider tile's first entries).
        let (p, bytes) = match get_unless_404(&format!("{prefix}/{p}"))? {
            Some(b) => (p, b),
            None => match p.split_once(".p/") {
                Some((full, _)) => (full.to_string(), get(&format!("{prefix}/{full}"))?),
                None => anyhow::bail!("GET {prefix}/{p}: HTTP status 404"),
            },
        };
        bytes_total += bytes.len();
        let dest: PathBuf = dir.join(&p);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(dest, bytes)?;
        if show && (i % 32 == 0 || i + 1 == total) {
            let width = 40;
            let filled = (i + 1) * width / total;
            eprint!(
                "\rfetching the log: [{}{}] {}/{total} tiles, {:.1} MB",
                "#".repeat(filled),
                "-".repeat(width - filled),
                i + 1,
                bytes_total as f64 / 1e6
            );
        }
    }
    if show {
        eprintln!(" in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// [`get`], with `None` for a 404.
fn get_unless_404(url: &str) -> anyhow::Result<Option<Vec<u8>>> {
    match get(url) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.to_string().ends_with("HTTP status 404") => Ok(None),
        Err(e) => Err(e),
    }
}

/// GET `url` (`http://` or `https://`, through [`sealbridge_net::agent`]: the system's roots or
/// `SSL_CERT_FILE` / `SSL_CERT_DIR`): status 200 or an error; at most `MAX_FETCH` bytes.
pub(crate) fn get(url: &str) -> anyhow::Result<Vec<u8>> {
    let agent = sealbridge_net::agent(&sealbridge_net::AgentConfig {
        user_agent: Some("sealbridge-audit".into()),
        ..sealbridge_net::AgentConfig::with_timeout(Duration::from_secs(30))
    })?;
    let mut resp = agent
        .get(url)
        .call()
        .map_err(sealbridge_net::NetError::from)
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    ensure!(status == 200, "GET {url}: HTTP status {status}");
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_FETCH)
        .read_to_vec()
        .map_err(sealbridge_net::NetError::from)
        .with_context(|| format!("GET {url}: reading at most {MAX_FETCH} bytes"))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// A published log whose (unverified) checkpoint claims more entries than accepted is
    /// refused before any tile is fetched (review: its size decided how much was downloaded).
    #[test]
    fn a_checkpoint_claiming_too_many_entries_fetches_nothing() {
        let note = format!(
            "{}\n— sealbridge-test AAAA\n",
            Checkpoint {
                origin: "example.org/log".into(),
                size: 1 << 40,
                root: sealbridge_log::Hash([7; 32]),
                extensions: Vec::new(),
            }
            .to_note_body()
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut paths = Vec::new();
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut header = String::new();
                while reader.read_line(&mut header).unwrap() > 2 {
                    header.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                if path == "/quit" {
                    return paths;
                }
                paths.push(path.clone());
                write!(
                    stream,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{note}",
                    note.len()
                )
                .unwrap();
            }
            paths
        });
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_at_most(&format!("http://{addr}/"), dir.path(), 1 << 24)
            .unwrap_err()
            .to_string();
        let _ = std::net::TcpStream::connect(addr)
            .and_then(|mut s| write!(s, "GET /quit HTTP/1.0\r\n\r\n"));
        let fetched = server.join().unwrap();
        assert!(e.contains("more than the 16777216 accepted"), "{e}");
        assert_eq!(fetched, vec!["/checkpoint".to_string()]);
        assert!(!dir.path().join("checkpoint").exists());
    }

    /// A checkpoint whose partial tiles the log has since completed (and deleted) is fetched
    /// through the full tiles, which tlog-tiles lets stand for them (review: an auditor reading
    /// a busy node's lagging cosigned checkpoint got 404s and gave up).
    #[test]
    fn partial_tiles_gone_are_fetched_as_the_full_ones() {
        let src = tempfile::tempdir().unwrap();
        let entries: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        let mut store = sealbridge_log::TileStore::open(src.path()).unwrap();
        store.append_batch(&entries[..200]).unwrap();
        let note = format!(
            "{}\n\u{2014} sealbridge-test AAAAAAA=\n",
            Checkpoint::new("example.org/log", 200, sealbridge_log::Hash([7; 32])).to_note_body()
        );
        store.append_batch(&entries[200..]).unwrap();
        assert!(
            !src.path().join("tile/entries/000.p/200").exists(),
            "the partial is gone"
        );
        let root = src.path().to_path_buf();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut header = String::new();
                while reader.read_line(&mut header).unwrap() > 2 {
                    header.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                if path == "/quit" {
                    return;
                }
                let body = if path == "/checkpoint" {
                    Some(note.clone().into_bytes())
                } else {
                    std::fs::read(root.join(path.trim_start_matches('/'))).ok()
                };
                match body {
                    Some(b) => {
                        write!(
                            stream,
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                            b.len()
                        )
                        .unwrap();
                        stream.write_all(&b).unwrap();
                    }
                    None => write!(
                        stream,
                        "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                    )
                    .unwrap(),
                }
            }
        });
        let dir = tempfile::tempdir().unwrap();
        fetch(&format!("http://{addr}"), dir.path()).unwrap();
        let _ = std::net::TcpStream::connect(addr)
            .and_then(|mut s| write!(s, "GET /quit HTTP/1.0\r\n\r\n"));
        server.join().unwrap();
        let read = sealbridge_log::TileReader::open(dir.path())
            .unwrap()
            .at(200)
            .read_all_entries()
            .unwrap();
        assert_eq!(read, entries[..200].to_vec());
    }
}
