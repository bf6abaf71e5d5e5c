//! Collateral lifecycle: when each piece was issued and when it expires or is due for an update,
//! so operators see a TCB recovery coming (`sealbridge attest collateral-status`).

use x509_cert::crl::CertificateList;
use x509_cert::der::Decode;

use crate::x509::Cert;
use crate::{Collateral, CollateralFacts, Error, dcap};

/// Warn this long before a piece expires.
pub const DUE_SOON: u64 = 7 * 86_400;

/// One piece of collateral.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Piece {
    /// What it is (`tcb_info`, `pck_crl`, `certificate CN=…`).
    pub what: String,
    /// Issue date / notBefore / thisUpdate (unix seconds).
    pub issued_at: u64,
    /// nextUpdate / notAfter (unix seconds): verification fails after this.
    pub expires_at: u64,
    /// `valid`, `due` (expires within 7 days), `expired` or `not_yet_valid` at the asked time.
    pub state: &'static str,
    /// TCB evaluation data number (Intel TCB info / QE identity), which a TCB recovery raises.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcb_evaluation_data_number: Option<u64>,
}

fn state(issued_at: u64, expires_at: u64, now: u64) -> &'static str {
    if now < issued_at {
        "not_yet_valid"
    } else if now > expires_at {
        "expired"
    } else if expires_at - now <= DUE_SOON {
        "due"
    } else {
        "valid"
    }
}

fn piece(what: String, issued_at: u64, expires_at: u64, now: u64, eval: Option<u64>) -> Piece {
    Piece {
        what,
        issued_at,
        expires_at,
        state: state(issued_at, expires_at, now),
        tcb_evaluation_data_number: eval,
    }
}

/// Parse RFC 3339 `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b.get(4) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = r.get(n..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh = num(19 + s.len() - 19 - 5..19 + s.len() - 19 - 3)?;
            let om = num(s.len() - 2..s.len())?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(t).ok()
}

fn json_dates(what: &str, text: &str, now: u64) -> Result<Piece, Error> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|_| Error::Collateral(format!("{what} is not JSON")))?;
    let date = |k: &str| {
        v.get(k)
            .and_then(|d| d.as_str())
            .and_then(parse_rfc3339)
            .ok_or(Error::Collateral(format!("{what} lacks {k}")))
    };
    let eval = v.get("tcbEvaluationDataNumber").and_then(|n| n.as_u64());
    Ok(piece(
        what.into(),
        date("issueDate")?,
        date("nextUpdate")?,
        now,
        eval,
    ))
}

fn crl(what: &str, der: &[u8], now: u64) -> Result<Piece, Error> {
    let c = CertificateList::from_der(der)
        .map_err(|_| Error::Collateral(format!("{what} is not a DER CRL")))?;
    let this = c.tbs_cert_list.this_update.to_unix_duration().as_secs();
    let next = c
        .tbs_cert_list
        .next_update
        .map_or(u64::MAX, |t| t.to_unix_duration().as_secs());
    Ok(piece(what.into(), this, next, now, None))
}

fn certs(what: &str, pem: &[u8], now: u64, out: &mut Vec<Piece>) -> Result<(), Error> {
    for c in Cert::chain_from_pem(pem)? {
        let (nb, na) = c.validity();
        out.push(piece(format!("{what}: {}", c.subject()), nb, na, now, None));
    }
    Ok(())
}

/// Every dated piece of `collateral`, evaluated at `now`, soonest expiry first.
pub fn status(collateral: &Collateral, now: u64) -> Result<Vec<Piece>, Error> {
    let mut out = Vec::new();
    match collateral {
        Collateral::Dcap(bytes) => {
            let c = dcap::parse_collateral_json(bytes)?;
            out.push(json_dates("tcb_info", &c.tcb_info, now)?);
            out.push(json_dates("qe_identity", &c.qe_identity, now)?);
            out.push(crl("root_ca_crl", &c.root_ca_crl, now)?);
            out.push(crl("pck_crl", &c.pck_crl, now)?);
            certs(
                "tcb_info_issuer_chain",
                c.tcb_info_issuer_chain.as_bytes(),
                now,
                &mut out,
            )?;
            certs(
                "pck_crl_issuer_chain",
                c.pck_crl_issuer_chain.as_bytes(),
                now,
                &mut out,
            )?;
        }
        Collateral::Snp { vek, chain } => {
            let v = Cert::from_der_or_pem(vek)?;
            let (nb, na) = v.validity();
            out.push(piece(format!("vek: {}", v.subject()), nb, na, now, None));
            if let Some(chain) = chain {
                certs("chain", chain, now, &mut out)?;
            }
        }
        Collateral::Nitro { root } => {
            let r = Cert::from_der_or_pem(root)?;
            let (nb, na) = r.validity();
            out.push(piece(format!("root: {}", r.subject()), nb, na, now, None));
        }
        Collateral::None => {}
    }
    out.sort_by_key(|p| p.expires_at);
    Ok(out)
}

/// What `collateral` says about freshness, for [`crate::Policy::appraise_with`]: the validity of
/// every dated piece, the lowest TCB evaluation data number of the TCB info and QE identity, and
/// when the newest TCB recovery took effect (the latest `tcbDate` of the TCB levels).
pub fn facts(collateral: &Collateral) -> Result<CollateralFacts, Error> {
    let pieces = status(collateral, 0)?;
    let mut f = CollateralFacts {
        validity: pieces
            .iter()
            .map(|p| (p.what.clone(), p.issued_at, p.expires_at))
            .collect(),
        tcb_evaluation_data_number: pieces
            .iter()
            .filter_map(|p| p.tcb_evaluation_data_number)
            .min(),
        tcb_recovery_at: None,
    };
    if let Collateral::Dcap(bytes) = collateral {
        let c = dcap::parse_collateral_json(bytes)?;
        let v: serde_json::Value = serde_json::from_str(&c.tcb_info)
            .map_err(|_| Error::Collateral("tcb_info is not JSON".into()))?;
        f.tcb_recovery_at = v
            .get("tcbLevels")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("tcbDate")?.as_str().and_then(parse_rfc3339))
            .max();
    }
    Ok(f)
}

/// Pieces that expire within `warn` seconds of `now` (or already have): what an operator must
/// renew. The verifier's metric `sealbridge_collateral_expiring` counts them.
pub fn expiring(pieces: &[Piece], now: u64, warn: u64) -> Vec<&Piece> {
    pieces
        .iter()
        .filter(|p| p.expires_at <= now.saturating_add(warn))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("2025-06-27T04:53:20Z"), Some(1_751_000_000));
        assert_eq!(parse_rfc3339("2023-07-01T01:00:00Z"), Some(1_688_173_200));
        assert_eq!(
            parse_rfc3339("2023-07-01T03:00:00+02:00"),
            Some(1_688_173_200)
        );
        assert_eq!(parse_rfc3339("2023-07-01T01:00:00.5Z"), Some(1_688_173_200));
        for bad in [
            "",
            "2023-07-01",
            "2023-13-01T00:00:00Z",
            "2023-07-01T00:00:00",
            "x023-07-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn states() {
        assert_eq!(state(10, 100, 5), "not_yet_valid");
        assert_eq!(state(10, 100, 101), "expired");
        assert_eq!(state(10, 100, 50), "due");
        assert_eq!(state(10, 100 + DUE_SOON * 2, 50), "valid");
    }
}
