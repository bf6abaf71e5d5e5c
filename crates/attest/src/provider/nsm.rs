//! Nitro Secure Module provider (feature `nitro-nsm`): asks `/dev/nsm` for an attestation
//! document whose `user_data` is the report data. Only works inside a Nitro enclave; the
//! transport is a trait so that tests (and anything else) can stand in for the device.

use aws_nitro_enclaves_nsm_api::api::{ErrorCode, Request, Response};
use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
use serde_bytes::ByteBuf;

use super::{EvidenceProvider, ProviderError};
use crate::Evidence;

/// Something that answers NSM requests: the device driver, or a fake.
pub trait NsmTransport: Send {
    /// One request, one response.
    fn process(&mut self, request: Request) -> Response;
}

/// The real `/dev/nsm` through AWS's driver (an ioctl).
#[derive(Debug, Default)]
pub struct NsmDevice;

impl NsmTransport for NsmDevice {
    fn process(&mut self, request: Request) -> Response {
        let fd = nsm_init();
        if fd < 0 {
            return Response::Error(ErrorCode::InternalError);
        }
        let response = nsm_process_request(fd, request);
        nsm_exit(fd);
        response
    }
}

/// A stand-in for `/dev/nsm` in a fake tree (`sealbridge enclave --tee nitro --tee-root DIR`,
/// tests only): `DIR/dev/nsm` is a Unix socket; each request is one connection carrying
/// `u32 BE length ‖ CBOR(Request)` and answered with `u32 BE length ‖ CBOR(Response)` — the
/// driver's own CBOR encoding of the same messages, over a socket instead of an ioctl.
#[derive(Debug)]
pub struct NsmSocket {
    path: std::path::PathBuf,
}

impl NsmSocket {
    /// The fake device at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn exchange(&self, request: &Request) -> Result<Response, String> {
        use std::io::{Read, Write};
        let mut body = Vec::new();
        ciborium::into_writer(request, &mut body).map_err(|e| e.to_string())?;
        let len = u32::try_from(body.len()).map_err(|_| "request too large".to_string())?;
        let mut s = std::os::unix::net::UnixStream::connect(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        s.write_all(&len.to_be_bytes())
            .and_then(|()| s.write_all(&body))
            .map_err(|e| e.to_string())?;
        let mut n = [0u8; 4];
        s.read_exact(&mut n).map_err(|e| e.to_string())?;
        let n = u32::from_be_bytes(n) as u64;
        if n > super::MAX_OUTBLOB {
            return Err(format!("answer of {n} bytes"));
        }
        let mut answer = Vec::new();
        s.take(n)
            .read_to_end(&mut answer)
            .map_err(|e| e.to_string())?;
        ciborium::from_reader(answer.as_slice()).map_err(|e| e.to_string())
    }
}

impl NsmTransport for NsmSocket {
    fn process(&mut self, request: Request) -> Response {
        self.exchange(&request).unwrap_or_else(|e| {
            // A fake device only (tests): say why on stderr, answer as the driver would.
            eprintln!("fake NSM at {}: {e}", self.path.display());
            Response::Error(ErrorCode::InternalError)
        })
    }
}

/// The Nitro Secure Module provider.
pub struct Nsm {
    transport: Box<dyn NsmTransport>,
}

impl std::fmt::Debug for Nsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nsm")
    }
}

impl Default for Nsm {
    fn default() -> Self {
        Self::with_transport(Box::new(NsmDevice))
    }
}

impl Nsm {
    /// A provider over `transport`.
    pub fn with_transport(transport: Box<dyn NsmTransport>) -> Self {
        Self { transport }
    }
}

impl EvidenceProvider for Nsm {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, ProviderError> {
        let response = self.transport.process(Request::Attestation {
            user_data: Some(ByteBuf::from(report_data.to_vec())),
            nonce: None,
            public_key: None,
        });
        match response {
            Response::Attestation { document } if !document.is_empty() => {
                Ok(Evidence::Nitro(document))
            }
            Response::Attestation { .. } => Err(ProviderError::Protocol(
                "the NSM returned an empty document".into(),
            )),
            Response::Error(ErrorCode::InternalError) => Err(ProviderError::Protocol(
                "cannot use /dev/nsm (not inside a Nitro enclave?)".into(),
            )),
            other => Err(ProviderError::Protocol(format!(
                "the NSM answered {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A fake NSM: records the requests, answers with `answer`.
    struct Fake {
        seen: Arc<Mutex<Vec<Request>>>,
        answer: fn() -> Response,
    }

    impl NsmTransport for Fake {
        fn process(&mut self, request: Request) -> Response {
            self.seen.lock().unwrap().push(request);
            (self.answer)()
        }
    }

    fn doc() -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../vectors/nitro/evervault_ga_attestation_doc.cose"),
        )
        .unwrap()
    }

    #[test]
    fn asks_for_an_attestation_over_exactly_the_report_data() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut nsm = Nsm::with_transport(Box::new(Fake {
            seen: seen.clone(),
            answer: || Response::Attestation { document: doc() },
        }));
        let ev = nsm.evidence(&[9; 64]).unwrap();
        assert_eq!(ev, Evidence::Nitro(doc()));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        match &seen[0] {
            Request::Attestation {
                user_data: Some(u),
                nonce: None,
                public_key: None,
            } => assert_eq!(u.as_slice(), &[9u8; 64]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_and_empty_documents_are_refused_with_a_clear_message() {
        for (answer, words) in [
            (
                (|| Response::Error(ErrorCode::InternalError)) as fn() -> Response,
                "not inside a Nitro enclave",
            ),
            (
                || Response::Error(ErrorCode::InvalidArgument),
                "InvalidArgument",
            ),
            (
                || Response::Attestation {
                    document: Vec::new(),
                },
                "empty document",
            ),
        ] {
            let mut nsm = Nsm::with_transport(Box::new(Fake {
                seen: Arc::default(),
                answer,
            }));
            let e = nsm.evidence(&[0; 64]).unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
    }
}
