//! Asking a witness to cosign (`POST <url>/add-checkpoint`), with the answer classified as
//! tlog-witness defines it: a stale old size (409, retry from the size the witness names) is
//! not a fork (422).

use std::time::Duration;

use sealbridge_log::cosign::{AddCheckpoint, WitnessKey, verify_cosignatures};

/// Why a witness did not cosign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddCheckpointError {
    /// 409: the witness last cosigned this size; ask again from it.
    #[error("the witness last cosigned size {0}")]
    Conflict(u64),
    /// 422: the witness found the checkpoint inconsistent with one it cosigned.
    #[error("the witness refuses the checkpoint as inconsistent: {0}")]
    Inconsistent(String),
    /// Any other refusal (status and body).
    #[error("the witness answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// What it said.
        body: String,
    },
    /// It answered 200 with something that is not a valid cosignature by its key.
    #[error("the witness's answer is not a valid cosignature by {0}")]
    BadCosignature(String),
    /// No answer.
    #[error("cannot reach the witness: {0}")]
    Unreachable(String),
}

/// Ask the witness at `url` (base URL), whose key is `key`, to cosign `req`: its signature
/// line, checked against `key` over the request's checkpoint.
pub fn add_checkpoint(
    url: &str,
    key: &WitnessKey,
    req: &AddCheckpoint,
) -> Result<String, AddCheckpointError> {
    let agent = sealbridge_net::agent(&sealbridge_net::AgentConfig {
        user_agent: Some("sealbridge-witness-client".into()),
        ..sealbridge_net::AgentConfig::with_timeout(Duration::from_secs(10))
    })
    .map_err(|e| AddCheckpointError::Unreachable(e.to_string()))?;
    let endpoint = format!("{}/add-checkpoint", url.trim_end_matches('/'));
    let mut resp = agent
        .post(&endpoint)
        .config()
        .http_status_as_error(false)
        .build()
        .send(req.to_body())
        .map_err(|e| AddCheckpointError::Unreachable(format!("POST {endpoint}: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .map_err(|e| AddCheckpointError::Unreachable(format!("POST {endpoint}: {e}")))?;
    match status {
        // Exactly one line is kept: the first that is this witness's verifying cosignature.
        // Anything else it sent (another witness's name, a second line) is dropped, so one
        // witness cannot put lines in the note that would spoil others' cosignatures.
        200 => body
            .lines()
            .map(|l| format!("{l}\n"))
            .find(|line| {
                line.starts_with(&format!("\u{2014} {} ", key.name()))
                    && sealbridge_log::cosign::add_signature_lines(
                        &req.checkpoint,
                        std::slice::from_ref(line),
                    )
                    .ok()
                    .and_then(|note| verify_cosignatures(&note, std::slice::from_ref(key)).ok())
                    .is_some_and(|c| c.len() == 1)
            })
            .ok_or_else(|| AddCheckpointError::BadCosignature(key.name().into())),
        409 => body
            .trim()
            .parse()
            .map(AddCheckpointError::Conflict)
            .map_err(|_| AddCheckpointError::Refused { status, body })
            .and_then(Err),
        422 => Err(AddCheckpointError::Inconsistent(body.trim().to_string())),
        _ => Err(AddCheckpointError::Refused {
            status,
            body: body.trim().chars().take(500).collect(),
        }),
    }
}
