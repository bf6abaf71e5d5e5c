//! A loopback stand-in for Intel PCS v4 / a PCCS and AMD KDS, for tests and measurements (feature
//! `stub`; never in a release path). It speaks their URL layouts and headers: `/sgx|tdx/
//! certification/v4/{tcb?fmspc=…, qe/identity, pckcrl?ca=…&encoding=der, rootcacrl}` with the
//! issuer chains percent-encoded in `TCB-Info-Issuer-Chain` (PCCS: `SGX-TCB-Info-Issuer-Chain`),
//! `SGX-Enclave-Identity-Issuer-Chain` and `SGX-PCK-CRL-Issuer-Chain`; `/vcek/v1/{product}/{hwid}?
//! blSPL=…` (DER) and `/{vcek,vlek}/v1/{product}/cert_chain` (PEM). What it serves is real
//! collateral taken apart into those responses; each VCEK is served only at the hwID and SPLs
//! its own certificate extensions name, so a client that asks for the wrong URL gets a 404.
//! It can answer `429` with `Retry-After` and counts every request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::OctetString;

use crate::{Error, dcap};

#[derive(Clone)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// (path, canonical query) → response.
    routes: HashMap<(String, String), Resp>,
    /// Every request line's target, in order.
    log: Vec<String>,
    /// Answer this many more requests with 429.
    rate_limited: u32,
    retry_after: String,
    /// Answer every request with 503.
    down: bool,
}

/// The running stub; stops when dropped.
pub struct Stub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    pccs_headers: bool,
}

impl std::fmt::Debug for Stub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stub").field("addr", &self.addr).finish()
    }
}

fn pct(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

/// `a=1&b=2` with keys sorted and values as integers where they are (so `blSPL=03` = `blSPL=3`)
/// and hex upper-cased (FMSPC), `update=` dropped.
fn canonical_query(q: &str) -> String {
    let mut kv: Vec<(String, String)> = q
        .split('&')
        .filter(|s| !s.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            if k == "update" {
                return None;
            }
            let v = match v.parse::<u64>() {
                Ok(n) if k.ends_with("SPL") => n.to_string(),
                _ => v.to_ascii_uppercase(),
            };
            Some((k.to_owned(), v))
        })
        .collect();
    kv.sort();
    kv.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn ext<'a>(c: &'a Certificate, oid: &str) -> Option<&'a [u8]> {
    c.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn spl(c: &Certificate, oid: &str) -> Option<u64> {
    u64::from_der(ext(c, oid)?).ok()
}

fn handle(state: &Mutex<State>, mut s: TcpStream) {
    let mut r = BufReader::new(match s.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    // Drain the headers.
    loop {
        let mut h = String::new();
        match r.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let resp = {
        let Ok(mut st) = state.lock() else { return };
        st.log.push(target.clone());
        if st.down {
            Resp {
                status: 503,
                headers: vec![],
                body: b"down".to_vec(),
            }
        } else if st.rate_limited > 0 {
            st.rate_limited -= 1;
            Resp {
                status: 429,
                headers: vec![("Retry-After".into(), st.retry_after.clone())],
                body: b"Too Many Requests".to_vec(),
            }
        } else {
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            st.routes
                .get(&(path.to_owned(), canonical_query(query)))
                .cloned()
                .unwrap_or(Resp {
                    status: 404,
                    headers: vec![],
                    body: b"not found".to_vec(),
                })
        }
    };
    let reason = match resp.status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\nRequest-ID: stub\r\n\r\n",
        resp.body.len()
    ));
    // One write: headers and body in separate segments would meet Nagle and delayed ACK.
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    let _ = s.set_nodelay(true);
    let _ = s.write_all(&bytes);
    let _ = s.flush();
}

impl Stub {
    /// Start on `127.0.0.1:0` with nothing to serve. `pccs_headers`: name the SGX TCB info chain
    /// header as a PCCS does (`SGX-TCB-Info-Issuer-Chain`) rather than PCS v4.
    pub fn start(pccs_headers: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            retry_after: "1".into(),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = conn {
                    let st = st.clone();
                    std::thread::spawn(move || handle(&st, c));
                }
            }
        });
        Ok(Self {
            addr,
            state,
            stop,
            pccs_headers,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A URL on loopback where nothing listens (an endpoint that is down).
    pub fn dead_url() -> String {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(9, |a| a.port());
        format!("http://127.0.0.1:{port}")
    }

    fn route(&self, path: &str, query: &str, headers: Vec<(String, String)>, body: Vec<u8>) {
        if let Ok(mut st) = self.state.lock() {
            st.routes.insert(
                (path.to_owned(), canonical_query(query)),
                Resp {
                    status: 200,
                    headers,
                    body,
                },
            );
        }
    }

    /// Serve a `QuoteCollateralV3` JSON (as in `vectors/{sgx,tdx}`) as PCS v4 responses: TCB info
    /// for its TEE and FMSPC, QE identity for its TEE, the PCK CRL for its CA, the root CA CRL.
    pub fn serve_dcap(&self, collateral_json: &[u8]) -> Result<(), Error> {
        let c = dcap::parse_collateral_json(collateral_json)?;
        let tcb: serde_json::Value = serde_json::from_str(&c.tcb_info)
            .map_err(|e| Error::Collateral(format!("tcb_info: {e}")))?;
        let tee = match tcb.get("id").and_then(|v| v.as_str()) {
            Some("TDX") => "tdx",
            _ => "sgx",
        };
        let fmspc = tcb
            .get("fmspc")
            .and_then(|v| v.as_str())
            .ok_or(Error::Collateral("tcb_info lacks fmspc".into()))?;
        let json = |chain_header: &str, chain: &str| {
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                (chain_header.to_string(), pct(chain)),
            ]
        };
        let tcb_header = if tee == "sgx" && self.pccs_headers {
            "SGX-TCB-Info-Issuer-Chain"
        } else {
            "TCB-Info-Issuer-Chain"
        };
        let h = json(tcb_header, &c.tcb_info_issuer_chain);
        self.route(
            &format!("/{tee}/certification/v4/tcb"),
            &format!("fmspc={fmspc}"),
            h,
            format!(
                r#"{{"tcbInfo":{},"signature":"{}"}}"#,
                c.tcb_info,
                hex::encode(&c.tcb_info_signature)
            )
            .into_bytes(),
        );
        let h = json(
            "SGX-Enclave-Identity-Issuer-Chain",
            &c.qe_identity_issuer_chain,
        );
        self.route(
            &format!("/{tee}/certification/v4/qe/identity"),
            "",
            h,
            format!(
                r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
                c.qe_identity,
                hex::encode(&c.qe_identity_signature)
            )
            .into_bytes(),
        );
        let leaf_is_platform = Certificate::load_pem_chain(c.pck_crl_issuer_chain.as_bytes())
            .ok()
            .and_then(|v| v.into_iter().next())
            .is_some_and(|l| l.tbs_certificate.subject.to_string().contains("Platform"));
        let ca = if leaf_is_platform {
            "platform"
        } else {
            "processor"
        };
        self.route(
            "/sgx/certification/v4/pckcrl",
            &format!("ca={ca}&encoding=der"),
            vec![
                ("Content-Type".into(), "application/pkix-crl".into()),
                (
                    "SGX-PCK-CRL-Issuer-Chain".into(),
                    pct(&c.pck_crl_issuer_chain),
                ),
            ],
            c.pck_crl.clone(),
        );
        // PCCS serves the root CA CRL hex-encoded; Intel PCS points at its distribution point.
        self.route(
            "/sgx/certification/v4/rootcacrl",
            "",
            vec![],
            hex::encode(&c.root_ca_crl).into_bytes(),
        );
        Ok(())
    }

    /// Serve a VCEK (DER) at the hwID and SPLs of its own extensions, and `chain` (PEM) as the
    /// `/vcek/v1/{product}/cert_chain` of its product.
    pub fn serve_vcek(&self, vcek_der: &[u8], chain_pem: &[u8]) -> Result<(), Error> {
        let c =
            Certificate::from_der(vcek_der).map_err(|e| Error::Collateral(format!("VCEK: {e}")))?;
        let product = ext(&c, "1.3.6.1.4.1.3704.1.2")
            .and_then(|v| {
                x509_cert::der::asn1::Ia5StringRef::from_der(v)
                    .map(|s| s.as_str().to_owned())
                    .ok()
                    .or_else(|| std::str::from_utf8(v).ok().map(str::to_owned))
            })
            .map(|p| p.split('-').next().unwrap_or_default().to_owned())
            .ok_or(Error::Collateral("VCEK lacks the product name".into()))?;
        let hwid = ext(&c, "1.3.6.1.4.1.3704.1.4")
            .map(|v| OctetString::from_der(v).map_or(v.to_vec(), |o| o.as_bytes().to_vec()))
            .ok_or(Error::Collateral("VCEK lacks hwID".into()))?;
        let get = |oid: &str| spl(&c, oid).ok_or(Error::Collateral(format!("VCEK lacks {oid}")));
        let mut query = format!(
            "blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
            get("1.3.6.1.4.1.3704.1.3.1")?,
            get("1.3.6.1.4.1.3704.1.3.2")?,
            get("1.3.6.1.4.1.3704.1.3.3")?,
            get("1.3.6.1.4.1.3704.1.3.8")?
        );
        if let Some(fmc) = spl(&c, "1.3.6.1.4.1.3704.1.3.9") {
            query.push_str(&format!("&fmcSPL={fmc}"));
        }
        let bin = vec![(
            "Content-Type".to_string(),
            "application/x-x509-ca-cert".to_string(),
        )];
        self.route(
            &format!("/vcek/v1/{product}/{}", hex::encode(&hwid)),
            &query,
            bin,
            vcek_der.to_vec(),
        );
        self.serve_chain("vcek", &product, chain_pem);
        Ok(())
    }

    /// Serve `chain_pem` at `/{kind}/v1/{product}/cert_chain` (`kind`: `vcek` or `vlek`).
    pub fn serve_chain(&self, kind: &str, product: &str, chain_pem: &[u8]) {
        self.route(
            &format!("/{kind}/v1/{product}/cert_chain"),
            "",
            vec![("Content-Type".into(), "application/x-pem-file".into())],
            chain_pem.to_vec(),
        );
    }

    /// Answer the next `n` requests with `429 Too Many Requests` and `Retry-After: retry_after`.
    pub fn rate_limit(&self, n: u32, retry_after: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.rate_limited = n;
            st.retry_after = retry_after.into();
        }
    }

    /// Answer every request with 503 (or stop doing so).
    pub fn set_down(&self, down: bool) {
        if let Ok(mut st) = self.state.lock() {
            st.down = down;
        }
    }

    /// Every request target so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }

    /// Number of requests so far.
    pub fn requests(&self) -> usize {
        self.state.lock().map_or(0, |s| s.log.len())
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}
