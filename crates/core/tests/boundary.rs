//! The same boundary tests over both transports: the enclave in process and the enclave behind a
//! Unix socket (length-prefixed frames, hard size limit, version handshake). Plus what only a
//! socket can carry: oversized and undecodable frames are refused and reach nothing.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use alloy_primitives::Address;
use sealbridge_core::link::{EnclaveLink, InProc, UnixLink, read_frame, serve_unix};
use sealbridge_deploy::dev::participants;
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{
        BOUNDARY_VERSION, BoundaryError, ChainEvent, MAX_FRAME_BYTES, Request, Response,
        decode_frame,
    },
};
use sealbridge_programs::netting::NettingConfig;

const ROOT: [u8; 32] = [9; 32];
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};

fn policy() -> EnclavePolicy {
    EnclavePolicy::new(
        NettingConfig {
            participants: participants(3).iter().map(|p| p.netting()).collect(),
            tokens: vec![Address::repeat_byte(0xee)],
        },
        4,
    )
}

fn refused(r: &Response) -> bool {
    matches!(r, Response::Error(BoundaryError::Refused(_)))
}

/// The contract every transport must honour.
fn boundary_contract(link: &mut dyn EnclaveLink) {
    // Nothing before the handshake; a wrong version is refused by number.
    assert!(refused(&link.call(Request::Describe).unwrap()));
    assert_eq!(
        link.call(Request::Hello { version: 99 }).unwrap(),
        Response::Error(BoundaryError::UnsupportedVersion(99))
    );
    assert_eq!(
        link.call(Request::Hello {
            version: BOUNDARY_VERSION
        })
        .unwrap(),
        Response::Hello {
            version: BOUNDARY_VERSION
        }
    );
    assert!(
        refused(&link.call(Request::Describe).unwrap()),
        "no enclave before Boot"
    );
    assert_eq!(
        link.call(Request::Boot {
            policy: policy(),
            target: TARGET,
            now: 1_700_000_000,
        })
        .unwrap(),
        Response::Ack
    );
    assert!(refused(
        &link
            .call(Request::Boot {
                policy: policy(),
                target: TARGET,
                now: 1_700_000_000,
            })
            .unwrap()
    ));
    let Response::Description(d) = link.call(Request::Describe).unwrap() else {
        panic!("describe")
    };
    assert_eq!(d.policy_hash, policy().hash());
    // A journaled state change returns its sealed record and the new log entries.
    let Response::Journaled {
        response,
        record,
        log_first_index,
        log_entries,
    } = link
        .call(Request::Journaled(Box::new(Request::Chain(
            ChainEvent::Deposit {
                account: participants(3)[0].account,
                token: Address::repeat_byte(0xee),
                amount: 5,
            },
        ))))
        .unwrap()
    else {
        panic!("journaled")
    };
    assert_eq!(*response, Response::Ack);
    assert_eq!(record.map(|r| r.index), Some(0));
    assert_eq!(log_first_index, 0, "boot entries were not drained yet");
    assert_eq!(
        log_entries.len(),
        5,
        "key announcement, policy, epoch, the session start, the deposit (issue 13)"
    );
    // A submission of garbage is a signed rejection, not a transport error.
    let Response::Journaled { response, .. } = link
        .call(Request::Journaled(Box::new(Request::Submit {
            envelope: b"garbage".to_vec(),
            now: 1_700_000_001,
        })))
        .unwrap()
    else {
        panic!("journaled")
    };
    let Response::Submitted(out) = *response else {
        panic!("submitted")
    };
    assert!(out.rejected.is_some());
    // Junk nobody signed: an unlogged rejection, no journal record (issue 11).
    assert!(!out.logged, "garbage is not logged");
    // A snapshot in many tiny chunks, fetched one frame each.
    let Response::Snapshot(manifest) = link.call(Request::Snapshot { chunk_bytes: 32 }).unwrap()
    else {
        panic!("snapshot")
    };
    assert_eq!(manifest.next_record, 1, "the boot's record only");
    assert!(manifest.chunks > 10, "{} chunks", manifest.chunks);
    let chunks: Vec<Vec<u8>> = (0..manifest.chunks)
        .map(|index| {
            match link
                .call(Request::SnapshotChunk {
                    id: manifest.id,
                    index,
                })
                .unwrap()
            {
                Response::SnapshotChunk { index: i, blob } if i == index => blob,
                r => panic!("{r:?}"),
            }
        })
        .collect();
    // A new session forgets everything: the host restores it from what it stored.
    link.reconnect().unwrap();
    link.call(Request::Hello {
        version: BOUNDARY_VERSION,
    })
    .unwrap();
    assert!(refused(&link.call(Request::Describe).unwrap()));
    assert_eq!(
        link.call(Request::Restore {
            policy: policy(),
            target: TARGET,
            manifest: (*manifest).clone(),
        })
        .unwrap(),
        Response::Restoring {
            received: 0,
            chunks: manifest.chunks
        }
    );
    for (index, blob) in (0u32..).zip(chunks) {
        let r = link.call(Request::RestoreChunk { index, blob }).unwrap();
        if index + 1 < manifest.chunks {
            assert!(refused(&link.call(Request::Describe).unwrap()), "not yet");
            assert_eq!(
                r,
                Response::Restoring {
                    received: index + 1,
                    chunks: manifest.chunks
                }
            );
        } else {
            assert_eq!(r, Response::Ack);
        }
    }
    let Response::Description(d2) = link.call(Request::Describe).unwrap() else {
        panic!("describe")
    };
    assert_eq!(
        d2.key_bundle, d.key_bundle,
        "the same instance keys after restore"
    );
}

#[test]
fn in_process() {
    boundary_contract(&mut InProc::new(ROOT));
}

#[test]
fn the_enclave_socket_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("enclave.sock");
    let s = sock.clone();
    std::thread::spawn(move || serve_unix(&s, ROOT));
    // Connecting waits until the socket exists.
    let link = UnixLink::connect(&sock, Duration::from_secs(10)).unwrap();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    drop(link);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from("enclave.sock")],
        "no staging left"
    );
}

#[test]
fn over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("enclave.sock");
    let s = sock.clone();
    std::thread::spawn(move || serve_unix(&s, ROOT));
    let mut link = UnixLink::connect(&sock, Duration::from_secs(10)).unwrap();
    boundary_contract(&mut link);
    // The enclave serves one session at a time: end this one.
    drop(link);

    // Raw frames: a length prefix over the limit is refused and the connection closed, and the
    // enclave never sees the bytes.
    let mut raw = UnixStream::connect(&sock).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let too_big = u32::try_from(MAX_FRAME_BYTES + 1).unwrap();
    raw.write_all(&too_big.to_be_bytes()).unwrap();
    let frame = read_frame(&mut raw).unwrap().unwrap();
    assert_eq!(
        decode_frame::<Response>(&frame).unwrap(),
        Response::Error(BoundaryError::FrameTooLarge)
    );
    let mut rest = Vec::new();
    assert_eq!(raw.read_to_end(&mut rest).unwrap(), 0, "connection closed");

    // An undecodable frame: refused, closed.
    let mut raw = UnixStream::connect(&sock).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    let frame = read_frame(&mut raw).unwrap().unwrap();
    assert_eq!(
        decode_frame::<Response>(&frame).unwrap(),
        Response::Error(BoundaryError::MalformedFrame)
    );
}
