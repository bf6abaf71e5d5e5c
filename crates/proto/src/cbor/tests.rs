//! Unit tests of the strict CBOR layer.
use super::*;

fn enc(f: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = Encoder::new();
    f(&mut e);
    e.into_bytes()
}

#[test]
fn rfc8949_appendix_a_integers() {
    // RFC 8949 Appendix A examples.
    let cases: &[(i64, &str)] = &[
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (100, "1864"),
        (1000, "1903e8"),
        (1_000_000, "1a000f4240"),
        (1_000_000_000_000, "1b000000e8d4a51000"),
        (-1, "20"),
        (-10, "29"),
        (-100, "3863"),
        (-1000, "3903e7"),
        (i64::MIN, "3b7fffffffffffffff"),
    ];
    for (v, h) in cases {
        let b = enc(|e| {
            e.int(*v);
        });
        assert_eq!(hex::encode(&b), *h, "{v}");
        let mut d = Decoder::new(&b);
        assert_eq!(d.int().unwrap(), *v);
        d.finish().unwrap();
    }
    let b = enc(|e| {
        e.uint(u64::MAX);
    });
    assert_eq!(hex::encode(&b), "1bffffffffffffffff");
    assert_eq!(Decoder::new(&b).uint().unwrap(), u64::MAX);
    assert!(Decoder::new(&b).int().is_err());
}

#[test]
fn private_use_labels_encode_as_expected() {
    let b = enc(|e| {
        e.int(-65_537);
    });
    assert_eq!(hex::encode(&b), "3a00010000");
    assert!(
        enc(|e| {
            e.int(4);
        }) < b
    );
}

#[test]
fn rejects_non_minimal_and_indefinite() {
    for h in [
        "1817",
        "190017",
        "1a00000017",
        "1b0000000000000017",
        "5f",
        "9f",
        "bf",
        "7f",
        "f4",
        "f97e00",
        "1c",
        "5801",
    ] {
        let b = hex::decode(h).unwrap();
        assert!(Decoder::new(&b).skip().is_err(), "{h} accepted");
    }
}

#[test]
fn strings_arrays_maps_tags() {
    let b = enc(|e| {
        e.tag(16)
            .array(3)
            .bytes(b"ab")
            .map(1)
            .int(-4)
            .text("x")
            .bytes(&[]);
    });
    assert_eq!(hex::encode(&b), "d083426162a123617840");
    let mut d = Decoder::new(&b);
    assert_eq!(d.tag().unwrap(), 16);
    d.array_of(3).unwrap();
    assert_eq!(d.bytes().unwrap(), b"ab");
    assert_eq!(d.map().unwrap(), 1);
    assert_eq!(d.int().unwrap(), -4);
    assert_eq!(d.text().unwrap(), "x");
    assert_eq!(d.bytes_fixed::<0>().unwrap(), [0u8; 0]);
    d.finish().unwrap();
}

#[test]
fn trailing_bytes_and_truncation() {
    let mut d = Decoder::new(&[0x01, 0x02]);
    d.uint().unwrap();
    assert!(d.finish().is_err());
    assert!(Decoder::new(&[0x43, 0, 0]).bytes().is_err());
    assert!(
        Decoder::new(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
            .array()
            .is_err()
    );
}

#[test]
fn depth_limit() {
    let b = vec![0x81; MAX_DEPTH + 1];
    assert!(Decoder::new(&b).skip().is_err());
    let mut ok = vec![0x81; MAX_DEPTH - 1];
    ok.push(0x00);
    assert_eq!(Decoder::new(&ok).skip().unwrap().len(), MAX_DEPTH);
}

#[test]
fn invalid_utf8_rejected() {
    assert!(Decoder::new(&[0x62, 0xc3, 0x28]).text().is_err());
}
