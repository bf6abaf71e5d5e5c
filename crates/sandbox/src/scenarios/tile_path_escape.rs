//! `tile-path-escape`: a client asks the node's gateway for "tiles" whose paths leave the log
//! directory — an empty segment that makes the rest absolute (`/tile//init`), `..` raw and
//! percent-encoded, encoded slashes, a NUL, non-canonical numbers — hoping to read the node's
//! database or any file on the host.
//!
//! Before issue 11 the gateway checked the path's characters and `..` only, then joined it to
//! the tiles directory: `GET /tile//init` joined an absolute path and served `/init` (any file
//! whose path uses the characters of tile names). Now the path is parsed into (level, index,
//! width) as c2sp.org/tlog-tiles writes them and the file read is the one rendered from those
//! numbers: every escape is `400 bad_tile_path` and no byte from outside the tiles comes back.
//! The requests go over TCP, byte for byte (no client normalises them), to the real gateway
//! router served by `sealbridge-serve`.
//!
//! Issue 13 added `GET /v1/evidence/{hash}`, which reads the node's database (meta key
//! `evidence/<hash>`). The scenario plants a secret under `evidence/secret` too and asks for it
//! and for the planted `secret` through that endpoint, raw and encoded: only a 64-hex hash is
//! looked up (`400 bad_id` otherwise), the listing names only such hashes, and a node without
//! appraisal policies answers `/v1/policies` with `404 no_policies`. Had the endpoint used the
//! path as the key, `GET /v1/evidence/secret` would have served the planted secret.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use sealbridge_core::Shared;
use sealbridge_log::TileStore;
use sealbridge_node::gateway;
use sealbridge_serve::{ServeOptions, Server};
use sealbridge_store::Store;
use serde_json::json;

use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct TilePathEscape;

/// In the node's data directory, next to `log/`: what an escape would be after.
const SECRET: &[u8] = b"SANDBOX-SECRET-OUTSIDE-THE-TILES";

/// Request targets that try to leave `<data>/log/tile/`.
const ESCAPES: &[&str] = &[
    "/tile//init",
    "/tile//etc/passwd",
    "/tile/../secret",
    "/tile/../../secret",
    "/tile/%2e%2e/secret",
    "/tile/%2E%2E/node.db",
    "/tile/0/..%2f..%2f..%2fsecret",
    "/tile/%2fetc%2fpasswd",
    "/tile/entries/../../secret",
    "/tile/0/000.p/../../../../secret",
    "/tile/0/000.p/7/../../../../../secret",
    "/tile/0/x001/..",
    "/tile/0/000%00",
    "/tile/./0/000",
    "/tile/0/0005",
    "/tile/0/x000/000",
    "/tile/64/000",
    "/tile/0/000.p/256",
];

/// One raw HTTP/1.1 GET: (status, body).
fn get(addr: SocketAddr, target: &str) -> Result<(u16, Vec<u8>), SandboxError> {
    let io = |e: std::io::Error| SandboxError::Setup(format!("GET {target}: {e}"));
    let mut s = TcpStream::connect(addr).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| SandboxError::Setup(format!("GET {target}: no HTTP answer")))?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    // The body may be chunked; the checks below only search it, so decoding is not needed
    // beyond keeping the bytes.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let len = std::str::from_utf8(b.get(..eol).unwrap_or_default())
            .ok()
            .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(0);
        if len == 0 {
            break;
        }
        out.extend_from_slice(b.get(eol + 2..eol + 2 + len).unwrap_or_default());
        b = b.get(eol + 2 + len + 2..).unwrap_or_default();
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Scenario for TilePathEscape {
    fn name(&self) -> &'static str {
        "tile-path-escape"
    }

    fn threat(&self) -> &'static str {
        "A client requests tile paths that leave the log directory (absolute, `..`, encoded \
         separators) to read the node's database or any host file through the public tile \
         endpoint (DESIGN §12 invariants 3 and 5)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            deposit: 0,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let setup_err = |e: &dyn std::fmt::Display| SandboxError::Setup(e.to_string());
        let dir = tempdir()?;
        let data = dir.join("data");
        w.step("a node data directory: a log of 300 entries, the database, a secret beside them");
        let mut tiles = TileStore::open(data.join("log")).map_err(|e| setup_err(&e))?;
        let entries: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        tiles.append_batch(&entries).map_err(|e| setup_err(&e))?;
        std::fs::write(data.join("secret"), SECRET).map_err(|e| setup_err(&e))?;
        let store = Store::open(&data).map_err(|e| setup_err(&e))?;
        store
            .put_meta("secret", &String::from_utf8_lossy(SECRET))
            .map_err(|e| setup_err(&e))?;
        store
            .put_meta("evidence/secret", &String::from_utf8_lossy(SECRET))
            .map_err(|e| setup_err(&e))?;
        let state = super::gateway_state(w, store, data.join("log"), Arc::new(Shared::default()));
        let server = Server::start(
            "127.0.0.1:0".parse().map_err(|e| setup_err(&e))?,
            None,
            gateway::router(state),
            ServeOptions::default(),
        )
        .map_err(|e| setup_err(&e))?;
        let addr = server.addr();

        w.step("genuine tiles: a full entry bundle, a partial hash tile");
        let full = get(addr, "/tile/entries/000")?;
        let full_on_disk = std::fs::read(data.join("log/tile/entries/000")).unwrap_or_default();
        let partial = get(addr, "/tile/0/001.p/44")?;
        let missing = get(addr, "/tile/0/999")?;

        w.step(&format!("{} escape attempts", ESCAPES.len()));
        let mut refused = 0usize;
        let mut leaked = Vec::new();
        let mut answers = serde_json::Map::new();
        for target in ESCAPES {
            let (status, body) = get(addr, target)?;
            if status == 400 && contains(&body, b"bad_tile_path") {
                refused += 1;
            }
            if contains(&body, SECRET)
                || contains(&body, b"SQLite format")
                || contains(&body, b"root:")
            {
                leaked.push(*target);
            }
            answers.insert((*target).to_string(), json!(status));
        }
        w.step("the evidence endpoint asked for the planted secrets");
        let mut evidence_refused = 0usize;
        for target in EVIDENCE_ESCAPES {
            let (status, body) = get(addr, target)?;
            if status == 400 && contains(&body, b"bad_id") {
                evidence_refused += 1;
            }
            if contains(&body, SECRET) {
                leaked.push(*target);
            }
            answers.insert((*target).to_string(), json!(status));
        }
        let listing = get(addr, "/v1/evidence")?;
        if contains(&listing.1, b"secret") {
            leaked.push("/v1/evidence");
        }
        let policies = get(addr, "/v1/policies")?;
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);

        let mut c = Checks::new();
        c.check(
            "a genuine full entry bundle is served byte for byte",
            full.0 == 200 && !full.1.is_empty() && full.1 == full_on_disk,
        )
        .check(
            "a genuine partial tile is served",
            partial.0 == 200 && partial.1.len() == 44 * 32,
        )
        .check("a tile that does not exist is 404", missing.0 == 404)
        .check(
            "every escape path is refused 400 bad_tile_path",
            refused == ESCAPES.len(),
        )
        .check(
            "every evidence path that is not a 64-hex hash is refused 400 bad_id",
            evidence_refused == EVIDENCE_ESCAPES.len(),
        )
        .check(
            "the evidence listing names no planted key",
            listing.0 == 200 && !contains(&listing.1, b"secret"),
        )
        .check(
            "a node without appraisal policies answers 404 no_policies",
            policies.0 == 404 && contains(&policies.1, b"no_policies"),
        )
        .check(
            "no byte from outside the tiles comes back",
            leaked.is_empty(),
        );
        Ok(c.outcome(json!({
            "escape_attempts": ESCAPES.len(),
            "refused_400": refused,
            "leaked": leaked,
            "answers": answers,
            "genuine_bundle_status": full.0,
            "genuine_bundle_bytes": full.1.len(),
            "partial_tile_status": partial.0,
            "partial_tile_bytes": partial.1.len(),
            "missing_tile_status": missing.0,
            "evidence_refused_400": evidence_refused,
            "policies_status": policies.0,
        })))
    }
}

/// Evidence lookups aimed at the planted `secret` and `evidence/secret` meta keys.
const EVIDENCE_ESCAPES: &[&str] = &[
    "/v1/evidence/secret",
    "/v1/evidence/..%2Fsecret",
    "/v1/evidence/%2e%2e%2fsecret",
    "/v1/evidence/evidence%2Fsecret",
    "/v1/evidence/0xsecret",
    "/v1/evidence/%00",
];

/// A fresh private directory under the system's temporary directory.
fn tempdir() -> Result<std::path::PathBuf, SandboxError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "sealbridge-tile-path-escape-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| SandboxError::Setup(e.to_string()))?;
    Ok(dir)
}
