//! The web audit view (issue 13 part 3): the page and what it renders, shared by the two servers
//! that serve it — `sealbridge audit --serve ADDR` (an auditor's own, independent audit) and the
//! node at `GET /audit` (the node's audit of itself). Neither server is here (this crate has no
//! HTTP server); each serves [`index_html`], [`APP_JS`] and [`ViewState::view`] at
//! `{base}`, `{base}app.js` and `{base}api/view`, and the node's receipt answer at
//! `{base}api/receipt/{id}`.
//!
//! The page (`web/index.html`, `web/app.js`: no framework, no build step) renders the latest
//! view and verifies a pasted receipt in the browser (WebCrypto): the receipt's signature, the
//! checkpoint's signature and the inclusion proof, against the enclave keys of the audit shown.
//!
//! The view (`GET …/api/view`, JSON): `{"ready": false}` before the first audit;
//! `{"ready": false, "error"}` when no audit could run yet; `{"ready": false, "unavailable"}`
//! when this server will not audit at all (why, for people); else the last audit:
//! `{"ready": true, "audited_at", "chain_id", "settlement", "registry", "origin",
//! "policy_hash", "checkpoint", "cosignatures": [{"witness", "timestamp"}], "gas": {tx: gas},
//! "report", "continuity"}`, with `"stale": {"since", "error"}` once a later audit could not
//! run. The node's views carry `"auditor": "node"`: the page then says that this verdict is the
//! node's audit of itself, not an independent one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use alloy_primitives::{Address, B256};
use sealbridge_chain::Chain;
use serde_json::{Value, json};

use crate::{Contracts, Report};

/// The page.
pub const INDEX_HTML: &str = include_str!("web/index.html");
/// Its script.
pub const APP_JS: &str = include_str!("web/app.js");

/// The page, with every relative URL it uses (its script, `api/view`, `api/receipt/…`) resolved
/// against `base` when one is given (an HTML `<base href>`). The node serves the page at
/// `/audit` and the rest under `/audit/`: `base` `"audit/"` (relative, so that a reverse proxy's
/// path prefix is kept).
pub fn index_html(base: Option<&str>) -> String {
    match base {
        None => INDEX_HTML.to_string(),
        Some(b) => {
            let escaped = b
                .replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;");
            INDEX_HTML.replacen("<head>", &format!("<head>\n<base href=\"{escaped}\">"), 1)
        }
    }
}

/// Who audits: the page says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auditor {
    /// `sealbridge audit --serve`: an auditor's own audit of a deployment.
    Independent,
    /// The node auditing its own public data (`GET /audit`).
    Node,
}

/// One audit, as the view shows it.
#[derive(Debug)]
pub struct Audited<'a> {
    /// The deployment audited.
    pub contracts: &'a Contracts,
    /// `Settlement.policyHash()` at the time ([`policy_hash`]).
    pub policy_hash: Option<B256>,
    /// The report.
    pub report: &'a Report,
    /// Whether the log extends the one audited before (JSON, with an `ok` field), if known.
    pub continuity: Option<Value>,
    /// The checkpoint note audited (with the cosignatures it carries).
    pub checkpoint: &'a str,
    /// The witness cosignatures of the checkpoint that verified.
    pub cosignatures: &'a [sealbridge_log::cosign::Cosigned],
    /// Gas used by each settling transaction ([`settled_gas`]).
    pub gas: &'a BTreeMap<B256, u64>,
}

/// What the page shows, rebuilt after each audit.
#[derive(Debug)]
pub struct ViewState {
    auditor: Auditor,
    view: RwLock<Value>,
}

impl ViewState {
    /// An auditor's view (`sealbridge audit --serve`), "not audited yet".
    pub fn new() -> Arc<Self> {
        Self::of(Auditor::Independent)
    }

    /// The view of `auditor`, "not audited yet".
    pub fn of(auditor: Auditor) -> Arc<Self> {
        let s = Self {
            auditor,
            view: RwLock::new(Value::Null),
        };
        s.set(json!({"ready": false}));
        Arc::new(s)
    }

    /// Who audits.
    pub fn auditor(&self) -> Auditor {
        self.auditor
    }

    /// The view now (what `GET …/api/view` answers).
    pub fn view(&self) -> Value {
        self.view.read().map(|v| v.clone()).unwrap_or_default()
    }

    /// `v` as this auditor's (the node's views say so).
    fn stamped(&self, mut v: Value) -> Value {
        if self.auditor == Auditor::Node
            && let Some(o) = v.as_object_mut()
        {
            o.insert("auditor".into(), "node".into());
        }
        v
    }

    fn set(&self, v: Value) {
        let v = self.stamped(v);
        if let Ok(mut w) = self.view.write() {
            *w = v;
        }
    }

    /// Publish the view of an audit.
    pub fn publish(&self, a: &Audited<'_>) {
        let c = a.contracts;
        self.set(json!({
            "ready": true,
            "audited_at": unix_now(),
            "chain_id": c.chain_id,
            "settlement": c.settlement,
            "registry": c.registry,
            "origin": sealbridge_enclave::checkpoint::log_origin(c.chain_id, c.settlement),
            "policy_hash": a.policy_hash,
            "checkpoint": a.checkpoint,
            "cosignatures": a.cosignatures.iter()
                .map(|c| json!({"witness": c.witness, "timestamp": c.timestamp}))
                .collect::<Vec<_>>(),
            "gas": a.gas.iter()
                .map(|(tx, g)| (format!("{tx:#x}"), json!(g)))
                .collect::<serde_json::Map<_, _>>(),
            "report": a.report,
            "continuity": a.continuity,
        }));
    }

    /// Publish that the latest audit could not run: the last report stays shown, marked stale
    /// (the page is not green while nothing is being audited).
    pub fn error(&self, message: String) {
        let Ok(mut w) = self.view.write() else {
            return;
        };
        let ready = w.get("ready") == Some(&Value::Bool(true));
        match w.as_object_mut() {
            Some(o) if ready => {
                o.insert(
                    "stale".into(),
                    json!({"since": unix_now(), "error": message}),
                );
            }
            _ => *w = self.stamped(json!({"ready": false, "error": message})),
        }
    }

    /// Publish that there will be no audit at all, and why (for people): the page says so, and
    /// shows no verdict.
    pub fn unavailable(&self, why: String) {
        self.set(json!({"ready": false, "unavailable": why}));
    }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `Settlement.policyHash()` now, if the chain answers.
pub fn policy_hash<C: Chain + ?Sized>(chain: &C, settlement: Address) -> Option<B256> {
    use alloy_sol_types::SolCall;
    use sealbridge_chain::bindings::Settlement::policyHashCall;
    let out = chain
        .call(
            Address::ZERO,
            settlement,
            policyHashCall {}.abi_encode().into(),
        )
        .ok()?;
    policyHashCall::abi_decode_returns(&out).ok()
}

/// Add the gas used by each settling transaction of `report` not in `gas` yet (one receipt
/// each; a receipt the chain does not give is asked again next time).
pub fn settled_gas<C: Chain + ?Sized>(chain: &C, report: &Report, gas: &mut BTreeMap<B256, u64>) {
    for s in &report.settled {
        if !gas.contains_key(&s.tx)
            && let Ok(Some(r)) = chain.receipt(s.tx)
        {
            gas.insert(s.tx, r.gas_used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_takes_a_base_and_is_unchanged_without_one() {
        assert_eq!(index_html(None), INDEX_HTML);
        let at = index_html(Some("audit/"));
        assert!(at.contains("<head>\n<base href=\"audit/\">"), "{at}");
        assert_eq!(at.matches("<base ").count(), 1);
        assert!(index_html(Some("a\"><script>")).contains("a&quot;>&lt;script>"));
        assert!(APP_JS.contains("api/view"));
    }

    #[test]
    fn the_nodes_views_say_who_audits_and_why_there_is_no_verdict() {
        let own = ViewState::new();
        assert_eq!(own.view(), json!({"ready": false}));
        own.error("down".into());
        assert_eq!(own.view(), json!({"ready": false, "error": "down"}));

        let node = ViewState::of(Auditor::Node);
        assert_eq!(node.view(), json!({"ready": false, "auditor": "node"}));
        node.unavailable("no JSON-RPC endpoint".into());
        assert_eq!(
            node.view(),
            json!({"ready": false, "auditor": "node", "unavailable": "no JSON-RPC endpoint"})
        );
        node.error("down".into());
        assert_eq!(node.view()["auditor"], "node");
        assert_eq!(node.view()["error"], "down");
    }
}
