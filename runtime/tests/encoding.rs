//! Payload encodings of format 2: exact round trips (property tests over random ternary
//! tensors of any length, random monotone threshold rows in both directions incl.
//! `i32::MIN`/`MAX`, arbitrary integers), golden layouts, sizes on threshold-like rows,
//! and strict, panic-free decoding of corrupt payloads.

use fqc_ir::{DType, TensorData};
use fqc_runtime::artifact::encoding::{
    decode, decode_delta2, encode, encode_delta2, encode_narrow, pack_trits, unpack_trits,
    PayloadEncoding,
};
use fqc_runtime::artifact::pack::{pack, PackError};
use proptest::prelude::*;

/// An `i32` biased towards the extremes and small values.
fn edgy_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => any::<i32>(),
        1 => Just(i32::MIN),
        1 => Just(i32::MAX),
        1 => Just(i32::MIN + 1),
        1 => Just(i32::MAX - 1),
        2 => -3i32..=3,
    ]
}

/// `rows` monotone rows of `len` thresholds, each row ascending or descending.
fn monotone_rows() -> impl Strategy<Value = (Vec<i32>, usize)> {
    (1usize..40, 0usize..8).prop_flat_map(|(len, rows)| {
        let row = (prop::collection::vec(edgy_i32(), len), any::<bool>()).prop_map(
            |(mut r, descending)| {
                r.sort_unstable();
                if descending {
                    r.reverse();
                }
                r
            },
        );
        prop::collection::vec(row, rows).prop_map(move |rs| (rs.concat(), len))
    })
}

/// Rows like real requantize thresholds: `x0 + round(k * step)` (ascending or not).
fn arithmetic_rows() -> impl Strategy<Value = (Vec<i32>, usize)> {
    (1usize..300, 1usize..6).prop_flat_map(|(len, rows)| {
        let row = (-1_000_000i64..1_000_000, -5000.0f64..5000.0).prop_map(move |(x0, step)| {
            (0..len)
                .map(|k| (x0 as f64 + (k as f64 * step).round()) as i32)
                .collect::<Vec<_>>()
        });
        prop::collection::vec(row, rows).prop_map(move |rs| (rs.concat(), len))
    })
}

fn int_dtypes() -> Vec<DType> {
    let mut out = vec![DType::I32, DType::Ternary];
    for bits in 2..=8 {
        out.push(DType::Int {
            signed: false,
            bits,
        });
        out.push(DType::Int { signed: true, bits });
    }
    out
}

/// An integer dtype and a tensor of it, with elements over the whole range or a narrow
/// slice of it, shaped as rows of `row_len`.
fn int_tensor() -> impl Strategy<Value = (DType, u64, TensorData)> {
    (
        prop::sample::select(int_dtypes()),
        1u64..20,
        0u64..12,
        any::<bool>(),
    )
        .prop_flat_map(|(dtype, row_len, rows, narrow)| {
            let (lo, hi) = match dtype {
                DType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                d => d.int_range().unwrap(),
            };
            let hi = if narrow {
                lo.saturating_add(2).min(hi)
            } else {
                hi
            };
            prop::collection::vec(lo..=hi, (row_len * rows) as usize).prop_map(move |v| {
                let data = match dtype {
                    DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
                    DType::Int { signed: false, .. } => {
                        TensorData::U8(v.iter().map(|&x| x as u8).collect())
                    }
                    _ => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
                };
                (dtype, row_len, data)
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn trits_round_trip(v in prop::collection::vec(-1i8..=1, 0..400)) {
        let packed = pack_trits(&v).unwrap();
        prop_assert_eq!(packed.len(), v.len().div_ceil(5));
        prop_assert!(packed.iter().all(|&b| b < 243));
        prop_assert_eq!(unpack_trits(v.len() as u64, &packed).unwrap(), v.clone());
        // Through the dtype-level entry points too: ternary is always base 3.
        let data = TensorData::I8(v.clone());
        let (enc, bytes) = encode(DType::Ternary, 1, &data).unwrap();
        prop_assert_eq!(enc, PayloadEncoding::Trits);
        prop_assert_eq!(&bytes, &packed);
        prop_assert_eq!(decode(enc, DType::Ternary, v.len() as u64, 1, &bytes).unwrap(), data);
    }

    #[test]
    fn monotone_thresholds_round_trip((v, len) in monotone_rows()) {
        let bytes = encode_delta2(&v, len);
        prop_assert_eq!(decode_delta2(v.len() as u64, len as u64, &bytes).unwrap(), v);
    }

    #[test]
    fn arbitrary_i32_rows_round_trip(v in prop::collection::vec(edgy_i32(), 0..200),
                                     len in 1usize..12) {
        let n = v.len() / len * len;
        let v = &v[..n];
        let bytes = encode_delta2(v, len);
        prop_assert_eq!(decode_delta2(n as u64, len as u64, &bytes).unwrap(), v.to_vec());
    }

    #[test]
    fn arithmetic_thresholds_round_trip_small((v, len) in arithmetic_rows()) {
        let bytes = encode_delta2(&v, len);
        prop_assert_eq!(decode_delta2(v.len() as u64, len as u64, &bytes).unwrap(), v.clone());
        // Second differences of rounded progressions are in -2..=2: 3 bits each, plus at
        // most 5 + 5 + 1 header bytes and 1 padding byte per row.
        let rows = v.len() / len;
        let bound = rows * 12 + (v.len() * 3).div_ceil(8);
        prop_assert!(bytes.len() <= bound, "{} > {bound}", bytes.len());
    }

    #[test]
    fn every_encoding_round_trips_and_is_never_larger_than_plain(
        (dtype, row_len, data) in int_tensor()
    ) {
        let n = data.len() as u64;
        let plain = pack(dtype, &data).unwrap();
        let (enc, bytes) = encode(dtype, row_len, &data).unwrap();
        prop_assert!(bytes.len() <= plain.len());
        prop_assert_eq!(decode(enc, dtype, n, row_len, &bytes).unwrap(), data.clone());
        // Every encoding that applies decodes its own output exactly.
        if let TensorData::I32(v) = &data {
            let d = encode_delta2(v, row_len as usize);
            prop_assert_eq!(decode(PayloadEncoding::Delta2, dtype, n, row_len, &d).unwrap(),
                            data.clone());
        }
        if dtype != DType::Ternary {
            let wide: Vec<i32> = match &data {
                TensorData::I32(v) => v.clone(),
                TensorData::I8(v) => v.iter().map(|&x| i32::from(x)).collect(),
                TensorData::U8(v) => v.iter().map(|&x| i32::from(x)).collect(),
                _ => unreachable!(),
            };
            let b = encode_narrow(&wide);
            prop_assert_eq!(decode(PayloadEncoding::Narrow, dtype, n, row_len, &b).unwrap(),
                            data.clone());
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        enc in prop::sample::select(vec![
            PayloadEncoding::Plain, PayloadEncoding::Trits,
            PayloadEncoding::Delta2, PayloadEncoding::Narrow,
        ]),
        dtype in prop::sample::select(int_dtypes()),
        bytes in prop::collection::vec(any::<u8>(), 0..96),
        n in 0u64..400,
        row_len in 0u64..40,
    ) {
        // Either a clean error or a tensor of exactly n in-range elements.
        if let Ok(t) = decode(enc, dtype, n, row_len, &bytes) {
            prop_assert_eq!(t.len() as u64, n);
            prop_assert!(t.holds(dtype));
            if let TensorData::I8(v) = &t {
                if dtype == DType::Ternary {
                    prop_assert!(v.iter().all(|x| (-1..=1).contains(x)));
                }
            }
        }
    }

    #[test]
    fn every_cut_or_extension_of_a_payload_is_an_error((v, len) in monotone_rows()) {
        let bytes = encode_delta2(&v, len);
        let n = v.len() as u64;
        for k in 0..bytes.len() {
            prop_assert!(decode_delta2(n, len as u64, &bytes[..k]).is_err(), "cut at {k}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(decode_delta2(n, len as u64, &longer).is_err());
    }
}

#[test]
fn golden_layouts() {
    // Digits 1, 2, 0, 1, 2 -> 1 + 2*3 + 0*9 + 1*27 + 2*81 = 196; then one digit 1.
    assert_eq!(pack_trits(&[1, -1, 0, 1, -1, 1]).unwrap(), vec![196, 1]);
    assert_eq!(pack_trits(&[-1; 5]).unwrap(), vec![242]);
    assert_eq!(pack_trits(&[]).unwrap(), Vec::<u8>::new());
    // A ternary weight of 36864 elements takes exactly 7373 bytes (2-bit: 9216).
    assert_eq!(pack_trits(&vec![0; 36864]).unwrap().len(), 7373);
    // Delta2 of one row 10, 13, 16, 20: zz(10)=20, zz(3)=6, w=1, second differences
    // 0, 1 -> zz 0, 2 -> needs w=2: bits 00 10 -> 0x08.
    assert_eq!(encode_delta2(&[10, 13, 16, 20], 4), vec![20, 6, 2, 0x08]);
    // i32::MIN to i32::MAX is a wrapping difference of -1: zz = 1.
    assert_eq!(
        encode_delta2(&[i32::MIN, i32::MAX], 2),
        vec![0xff, 0xff, 0xff, 0xff, 0x0f, 1]
    );
    // Narrow flags 0, 1, 1, 0, 1: min 0, width 1, bits 10110 -> 0x16.
    assert_eq!(encode_narrow(&[0, 1, 1, 0, 1]), vec![0, 1, 0x16]);
}

#[test]
fn thresholds_of_a_real_layer_shrink_by_more_than_ten() {
    // 16 channels of 255 levels, like w8a8 ResNet-20: x0 + round(k * 257.6).
    let v: Vec<i32> = (0..16)
        .flat_map(|c| (0..255).map(move |k| -3000 + 17 * c + (k as f64 * 257.6).round() as i32))
        .collect();
    let data = TensorData::I32(v);
    let (enc, bytes) = encode(DType::I32, 255, &data).unwrap();
    assert_eq!(enc, PayloadEncoding::Delta2);
    let plain = 16 * 255 * 4;
    assert!(bytes.len() * 10 < plain, "{} bytes", bytes.len());
    assert_eq!(
        decode(enc, DType::I32, 16 * 255, 255, &bytes).unwrap(),
        data
    );
    // Descending flags at one bit each.
    let flags = TensorData::I8((0..64).map(|i| (i % 3 == 0) as i8).collect());
    let (enc, bytes) = encode(DType::I8, 64, &flags).unwrap();
    assert_eq!((enc, bytes.len()), (PayloadEncoding::Narrow, 2 + 8));
}

#[test]
fn trits_decoding_is_strict() {
    // Exact length.
    assert!(matches!(
        unpack_trits(6, &[0]),
        Err(PackError::Length {
            expected: 2,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        unpack_trits(5, &[0, 0]),
        Err(PackError::Length { .. })
    ));
    // A full byte must be below 243; a last byte of r digits below 3^r.
    assert!(matches!(
        unpack_trits(5, &[243]),
        Err(PackError::TritByte {
            index: 0,
            byte: 243
        })
    ));
    assert!(matches!(
        unpack_trits(6, &[0, 3]),
        Err(PackError::TritByte { index: 1, byte: 3 })
    ));
    assert!(unpack_trits(6, &[0, 2]).is_ok());
    assert!(matches!(
        unpack_trits(7, &[0, 9]),
        Err(PackError::TritByte { index: 1, .. })
    ));
    // Huge counts are refused by the length check, before allocating.
    assert!(matches!(
        unpack_trits(u64::MAX, &[0; 5]),
        Err(PackError::Length { .. })
    ));
    assert!(matches!(
        pack_trits(&[0, 2]),
        Err(PackError::OutOfRange { index: 1, .. })
    ));
}

#[test]
fn delta2_and_narrow_decoding_is_strict() {
    let good = encode_delta2(&[10, 13, 16, 20], 4);
    assert_eq!(decode_delta2(4, 4, &good).unwrap(), vec![10, 13, 16, 20]);
    // Width 0 and 33 are invalid.
    for w in [0u8, 33, 255] {
        let mut b = good.clone();
        b[2] = w;
        assert!(
            matches!(decode_delta2(4, 4, &b), Err(PackError::Width { .. })),
            "width {w}"
        );
    }
    // Nonzero padding bits.
    let mut b = good.clone();
    b[3] |= 0x80;
    assert!(matches!(
        decode_delta2(4, 4, &b),
        Err(PackError::Padding { .. })
    ));
    // Overlong, overflowing and unterminated varints.
    for bad in [
        vec![0x80, 0x00],
        vec![0xff, 0xff, 0xff, 0xff, 0x10],
        vec![0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    ] {
        assert!(
            matches!(decode_delta2(1, 1, &bad), Err(PackError::Varint { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        decode_delta2(1, 1, &[0x80]),
        Err(PackError::Truncated { .. })
    ));
    // Trailing bytes, and rows that do not divide the count.
    assert!(matches!(
        decode_delta2(1, 1, &[0, 0]),
        Err(PackError::Trailing { extra: 1, .. })
    ));
    assert!(matches!(
        decode_delta2(0, 1, &[0]),
        Err(PackError::Trailing { .. })
    ));
    assert!(matches!(
        decode_delta2(6, 4, &good),
        Err(PackError::Rows { .. })
    ));
    assert!(matches!(
        decode_delta2(4, 0, &good),
        Err(PackError::Rows { .. })
    ));
    // A count no payload of this length can hold is refused before allocating.
    assert!(matches!(
        decode_delta2(1 << 40, 1 << 40, &good),
        Err(PackError::Short { .. })
    ));
    let u3 = DType::int(false, 3).unwrap();
    assert!(matches!(
        decode(PayloadEncoding::Narrow, u3, 1 << 40, 1, &[0, 1, 0]),
        Err(PackError::Short { .. })
    ));
    // Narrow values must lie in the dtype's range: u3 min 0, width 4, offset 15.
    assert!(matches!(
        decode(PayloadEncoding::Narrow, u3, 1, 1, &[0, 4, 15]),
        Err(PackError::OutOfRange {
            index: 0,
            value: 15,
            ..
        })
    ));
    // i32 offsets past i32::MAX: min i32::MAX, width 1, offset 1.
    let mut b = vec![0xfe, 0xff, 0xff, 0xff, 0x0f, 1, 1];
    assert!(matches!(
        decode(PayloadEncoding::Narrow, DType::I32, 1, 1, &b),
        Err(PackError::OutOfRange { .. })
    ));
    b[6] = 0;
    assert_eq!(
        decode(PayloadEncoding::Narrow, DType::I32, 1, 1, &b).unwrap(),
        TensorData::I32(vec![i32::MAX])
    );
}

#[test]
fn encodings_apply_only_to_their_dtypes() {
    let u4 = DType::int(false, 4).unwrap();
    for (enc, dtype) in [
        (PayloadEncoding::Trits, DType::I32),
        (PayloadEncoding::Trits, u4),
        (PayloadEncoding::Delta2, DType::Ternary),
        (PayloadEncoding::Delta2, DType::I8),
        (PayloadEncoding::Narrow, DType::F32),
        (PayloadEncoding::Narrow, DType::I64),
        (PayloadEncoding::Narrow, DType::Ternary),
    ] {
        let err = decode(enc, dtype, 0, 1, &[]).unwrap_err();
        assert!(matches!(err, PackError::Encoding { .. }), "{err}");
        assert!(err.to_string().contains(enc.name()), "{err}");
    }
    // Floats and i64 stay plain.
    let f = TensorData::F32(vec![0.0; 16]);
    assert_eq!(
        encode(DType::F32, 16, &f).unwrap().0,
        PayloadEncoding::Plain
    );
}
