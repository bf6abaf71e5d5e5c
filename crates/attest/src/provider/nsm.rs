//! Nitro Secure Module provider (feature `nitro-nsm`): asks `/dev/nsm` for an attestation
//! document whose `user_data` is the report data. Only works inside a Nitro enclave.

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
use serde_bytes::ByteBuf;

use super::{EvidenceProvider, ProviderError};
use crate::Evidence;

/// The NSM device.
#[derive(Debug, Default)]
pub struct Nsm;

impl EvidenceProvider for Nsm {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, ProviderError> {
        let fd = nsm_init();
        if fd < 0 {
            return Err(ProviderError::Protocol("cannot open /dev/nsm".into()));
        }
        let response = nsm_process_request(
            fd,
            Request::Attestation {
                user_data: Some(ByteBuf::from(report_data.to_vec())),
                nonce: None,
                public_key: None,
            },
        );
        nsm_exit(fd);
        match response {
            Response::Attestation { document } => Ok(Evidence::Nitro(document)),
            other => Err(ProviderError::Protocol(format!("NSM answered {other:?}"))),
        }
    }
}
