//! The SEV-SNP guest device (feature `snp-guest`): reports through `SNP_GET_REPORT` where the
//! kernel has no configfs-tsm ([`SevGuestReports`]), and the derived key: `SNP_GET_DERIVED_KEY` on `/dev/sev-guest`
//! (Linux `Documentation/virt/coco/sev-guest.rst` §2.2; AMD SEV-SNP ABI, `MSG_KEY_REQ`), the
//! sealing key of an SNP guest. The AMD Secure Processor derives it from the chip's VCEK root and
//! the guest fields the request selects; we select the guest policy and the launch measurement, so
//! another build, a debug launch or another chip derives another key, and the host, which never
//! sees it, cannot.
//!
//! The device is reached through a trait, [`SnpKeyTransport`]: the real one, [`SevGuestDevice`],
//! uses the virtee `sev` crate's ioctl wrapper (so no `unsafe` here); tests stand in a fake that
//! checks the request exactly.

use super::ProviderError;

/// `GUEST_FIELD_SELECT` bit: mix the guest policy into the key.
pub const FIELD_POLICY: u64 = 1 << 0;
/// `GUEST_FIELD_SELECT` bit: mix the launch measurement into the key.
pub const FIELD_MEASUREMENT: u64 = 1 << 3;
/// What the sealing key is bound to: the policy (so a debug launch of the same image gets
/// another key) and the measurement (so only this build does). Not the TCB version: a firmware
/// update would otherwise lose every sealed state (the keyholders, if any, recover it anyway).
pub const SEALING_FIELDS: u64 = FIELD_POLICY | FIELD_MEASUREMENT;

/// One `MSG_KEY_REQ` (SEV-SNP ABI, "Key Request Message").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivedKeyRequest {
    /// `ROOT_KEY_SELECT`: false = the VCEK (chip-unique), true = the VM root key (VMRK).
    pub vmrk: bool,
    /// `GUEST_FIELD_SELECT`.
    pub guest_field_select: u64,
    /// The VMPL whose key is derived; must be at least the caller's.
    pub vmpl: u32,
    /// `GUEST_SVN` mixed in (0: the key does not depend on it; unselected anyway).
    pub guest_svn: u32,
    /// `TCB_VERSION` mixed in (unselected).
    pub tcb_version: u64,
}

impl DerivedKeyRequest {
    /// The request of the sealing key of a guest running at `vmpl`.
    pub fn sealing(vmpl: u32) -> Self {
        Self {
            vmrk: false,
            guest_field_select: SEALING_FIELDS,
            vmpl,
            guest_svn: 0,
            tcb_version: 0,
        }
    }
}

/// Something that answers `SNP_GET_DERIVED_KEY`: the guest device, or a fake.
pub trait SnpKeyTransport: Send {
    /// The 32-byte derived key.
    ///
    /// # Errors
    /// The device is missing or the firmware refused the request.
    fn derived_key(&mut self, request: &DerivedKeyRequest) -> Result<[u8; 32], ProviderError>;
}

/// `/dev/sev-guest`, through the virtee `sev` crate (Linux only).
#[derive(Debug, Default)]
pub struct SevGuestDevice;

#[cfg(target_os = "linux")]
impl SnpKeyTransport for SevGuestDevice {
    fn derived_key(&mut self, r: &DerivedKeyRequest) -> Result<[u8; 32], ProviderError> {
        use sev::firmware::guest::{DerivedKey, Firmware, GuestFieldSelect};
        let mut fw = Firmware::open().map_err(|source| ProviderError::Io {
            what: "open /dev/sev-guest".into(),
            source,
        })?;
        let request = DerivedKey::new(
            r.vmrk,
            GuestFieldSelect(r.guest_field_select),
            r.vmpl,
            r.guest_svn,
            r.tcb_version,
            None,
        );
        // MSG_KEY_REQ version 1, which every SNP firmware answers. (`None` means version 2 in
        // the sev crate, which also needs a launch mitigation vector and fails without one.)
        fw.get_derived_key(Some(1), request)
            .map_err(|e| ProviderError::Protocol(format!("SNP_GET_DERIVED_KEY: {e}")))
    }
}

#[cfg(not(target_os = "linux"))]
impl SnpKeyTransport for SevGuestDevice {
    fn derived_key(&mut self, _: &DerivedKeyRequest) -> Result<[u8; 32], ProviderError> {
        Err(ProviderError::Protocol(
            "/dev/sev-guest exists only on Linux".into(),
        ))
    }
}

/// Something that answers `SNP_GET_REPORT`: the guest device, or a fake.
pub trait SnpReportTransport: Send {
    /// The raw attestation report over `report_data`, requested at `vmpl`.
    ///
    /// # Errors
    /// The device is missing or the firmware refused the request.
    fn report(&mut self, report_data: [u8; 64], vmpl: u32) -> Result<Vec<u8>, ProviderError>;
}

#[cfg(target_os = "linux")]
impl SnpReportTransport for SevGuestDevice {
    fn report(&mut self, report_data: [u8; 64], vmpl: u32) -> Result<Vec<u8>, ProviderError> {
        use sev::firmware::guest::Firmware;
        let mut fw = Firmware::open().map_err(|source| ProviderError::Io {
            what: "open /dev/sev-guest".into(),
            source,
        })?;
        // MSG_REPORT_REQ version 1.
        fw.get_report(Some(1), Some(report_data), Some(vmpl))
            .map_err(|e| ProviderError::Protocol(format!("SNP_GET_REPORT: {e}")))
    }
}

#[cfg(not(target_os = "linux"))]
impl SnpReportTransport for SevGuestDevice {
    fn report(&mut self, _: [u8; 64], _: u32) -> Result<Vec<u8>, ProviderError> {
        Err(ProviderError::Protocol(
            "/dev/sev-guest exists only on Linux".into(),
        ))
    }
}

/// SEV-SNP evidence through the `SNP_GET_REPORT` ioctl, for guests whose kernel has no
/// configfs-tsm (the "ioctl fallback"; configfs-tsm is preferred where present).
pub struct SevGuestReports {
    transport: Box<dyn SnpReportTransport>,
    vmpl: u32,
}

impl std::fmt::Debug for SevGuestReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SevGuestReports")
            .field("vmpl", &self.vmpl)
            .finish_non_exhaustive()
    }
}

impl SevGuestReports {
    /// Reports requested at `vmpl` through `transport`.
    pub fn new(transport: Box<dyn SnpReportTransport>, vmpl: u32) -> Self {
        Self { transport, vmpl }
    }
}

/// `REPORT_DATA` of an SEV-SNP `ATTESTATION_REPORT` (ABI Table 23: offset 0x50, 64 bytes).
const REPORT_DATA_AT: usize = 0x50;

impl super::EvidenceProvider for SevGuestReports {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<crate::Evidence, ProviderError> {
        let report = self.transport.report(*report_data, self.vmpl)?;
        match report.get(REPORT_DATA_AT..REPORT_DATA_AT + 64) {
            Some(d) if d == report_data.as_slice() => Ok(crate::Evidence::Snp(report)),
            Some(_) => Err(ProviderError::Protocol(
                "SNP_GET_REPORT answered a report over other report data".into(),
            )),
            None => Err(ProviderError::Protocol(format!(
                "SNP_GET_REPORT answered {} bytes, not a report",
                report.len()
            ))),
        }
    }
}

/// The guest's sealing key: one `SNP_GET_DERIVED_KEY` for [`DerivedKeyRequest::sealing`] at
/// `vmpl`. An all-zero key (a firmware that answers without deriving) is refused.
///
/// # Errors
/// The transport's, or a zero key.
pub fn sealing_key(
    transport: &mut dyn SnpKeyTransport,
    vmpl: u32,
) -> Result<[u8; 32], ProviderError> {
    let key = transport.derived_key(&DerivedKeyRequest::sealing(vmpl))?;
    if key == [0u8; 32] {
        return Err(ProviderError::Protocol(
            "SNP_GET_DERIVED_KEY answered an all-zero key".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake Secure Processor: the key is a function of the selected fields of its guest.
    struct FakeSp {
        measurement: [u8; 48],
        policy: u64,
        guest_vmpl: u32,
        seen: Vec<DerivedKeyRequest>,
        fail: bool,
        zero: bool,
    }

    impl SnpKeyTransport for FakeSp {
        fn derived_key(&mut self, r: &DerivedKeyRequest) -> Result<[u8; 32], ProviderError> {
            self.seen.push(*r);
            if self.fail {
                return Err(ProviderError::Protocol("firmware error 0x16".into()));
            }
            if r.vmpl < self.guest_vmpl {
                return Err(ProviderError::Protocol("invalid VMPL".into()));
            }
            // A stand-in KDF over the selected fields (the real one is AMD's, keyed by the VCEK).
            let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            ctx.update(&r.vmpl.to_le_bytes());
            if r.guest_field_select & FIELD_MEASUREMENT != 0 {
                ctx.update(&self.measurement);
            }
            if r.guest_field_select & FIELD_POLICY != 0 {
                ctx.update(&self.policy.to_le_bytes());
            }
            let mut k = [0u8; 32];
            if !self.zero {
                k.copy_from_slice(ctx.finish().as_ref());
            }
            Ok(k)
        }
    }

    fn sp(measurement: u8) -> FakeSp {
        FakeSp {
            measurement: [measurement; 48],
            policy: 0x30000 | 0x1,
            guest_vmpl: 0,
            seen: vec![],
            fail: false,
            zero: false,
        }
    }

    #[test]
    fn asks_for_the_vcek_rooted_key_bound_to_policy_and_measurement() {
        let mut a = sp(1);
        let k = sealing_key(&mut a, 0).unwrap();
        assert_eq!(
            a.seen,
            vec![DerivedKeyRequest {
                vmrk: false,
                guest_field_select: 0b1001,
                vmpl: 0,
                guest_svn: 0,
                tcb_version: 0,
            }]
        );
        // Another build derives another key; the same build the same one.
        assert_ne!(sealing_key(&mut sp(2), 0).unwrap(), k);
        assert_eq!(sealing_key(&mut sp(1), 0).unwrap(), k);
        // A debug launch (other policy) of the same build: another key.
        let mut debug = sp(1);
        debug.policy |= 1 << 19;
        assert_ne!(sealing_key(&mut debug, 0).unwrap(), k);
    }

    type Answer = fn([u8; 64]) -> Result<Vec<u8>, ProviderError>;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<([u8; 64], u32)>>>;

    /// A fake device answering reports: records the requests, echoes the report data into a
    /// report-sized answer (or another's, or a short one).
    struct FakeReports {
        seen: Seen,
        answer: Answer,
    }

    impl SnpReportTransport for FakeReports {
        fn report(&mut self, d: [u8; 64], vmpl: u32) -> Result<Vec<u8>, ProviderError> {
            self.seen.lock().unwrap().push((d, vmpl));
            (self.answer)(d)
        }
    }

    fn report_over(d: [u8; 64]) -> Vec<u8> {
        let mut r = vec![0u8; 0x4a0];
        r[REPORT_DATA_AT..REPORT_DATA_AT + 64].copy_from_slice(&d);
        r
    }

    #[test]
    fn reports_through_the_ioctl_bind_exactly_the_report_data() {
        use crate::provider::EvidenceProvider;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut p = SevGuestReports::new(
            Box::new(FakeReports {
                seen: seen.clone(),
                answer: |d| Ok(report_over(d)),
            }),
            0,
        );
        let ev = p.evidence(&[7; 64]).unwrap();
        assert_eq!(ev, crate::Evidence::Snp(report_over([7; 64])));
        assert_eq!(*seen.lock().unwrap(), vec![([7u8; 64], 0)]);
        for (answer, words) in [
            (
                (|_| Ok(report_over([8; 64]))) as Answer,
                "other report data",
            ),
            (|_| Ok(vec![1, 2, 3]), "3 bytes"),
            (
                |_| {
                    Err(ProviderError::Protocol(
                        "SNP_GET_REPORT: firmware error".into(),
                    ))
                },
                "firmware error",
            ),
        ] {
            let mut p = SevGuestReports::new(
                Box::new(FakeReports {
                    seen: seen.clone(),
                    answer,
                }),
                0,
            );
            let e = p.evidence(&[7; 64]).unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
    }

    #[test]
    fn firmware_errors_and_zero_keys_are_refused() {
        let mut f = sp(1);
        f.fail = true;
        let e = sealing_key(&mut f, 0).unwrap_err().to_string();
        assert!(e.contains("0x16"), "{e}");
        // A guest at VMPL 1 asking for VMPL 0's key is refused by the firmware.
        let mut svsm = sp(1);
        svsm.guest_vmpl = 1;
        assert!(sealing_key(&mut svsm, 0).is_err());
        assert!(sealing_key(&mut svsm, 1).is_ok());
        // A firmware that answers without deriving.
        let mut zero = sp(1);
        zero.zero = true;
        let e = sealing_key(&mut zero, 0).unwrap_err().to_string();
        assert!(e.contains("all-zero"), "{e}");
    }
}
