//! Payload packing: exact round trips for every dtype (property tests over random
//! tensors of odd lengths), the bit layout pinned by golden vectors, and strict unpacking.

use fqc_ir::{DType, TensorData};
use fqc_runtime::artifact::pack::{pack, packed_len, unpack, PackError};
use proptest::prelude::*;

/// Every low-bit dtype: `u2..u8`, `i2..i8`, `t2`.
fn low_bit_dtypes() -> Vec<DType> {
    let mut out = vec![DType::Ternary];
    for bits in 2..=8 {
        out.push(DType::Int {
            signed: false,
            bits,
        });
        out.push(DType::Int { signed: true, bits });
    }
    out
}

/// A low-bit dtype and a tensor of it whose elements span the dtype's whole range.
fn low_bit_tensor() -> impl Strategy<Value = (DType, TensorData)> {
    prop::sample::select(low_bit_dtypes()).prop_flat_map(|dtype| {
        let (lo, hi) = dtype.int_range().expect("low-bit types have a range");
        let elems = prop::collection::vec(lo..=hi, 0..300);
        elems.prop_map(move |v| {
            let data = match dtype {
                DType::Int { signed: false, .. } => {
                    TensorData::U8(v.iter().map(|&x| x as u8).collect())
                }
                _ => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
            };
            (dtype, data)
        })
    })
}

fn bits(dtype: DType) -> u64 {
    match dtype {
        DType::Int { bits, .. } => u64::from(bits),
        DType::Ternary => 2,
        _ => unreachable!("only low-bit dtypes here"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn low_bit_round_trip((dtype, data) in low_bit_tensor()) {
        let packed = pack(dtype, &data).unwrap();
        let n = data.len() as u64;
        prop_assert_eq!(packed.len() as u64, (n * bits(dtype)).div_ceil(8));
        prop_assert_eq!(Some(packed.len() as u64), packed_len(dtype, n));
        prop_assert_eq!(unpack(dtype, n, &packed).unwrap(), data);
    }

    #[test]
    fn odd_lengths_round_trip((dtype, data) in low_bit_tensor(), cut in 0usize..8) {
        // Force an odd element count so the stream ends mid-byte for every width.
        let take = |n: usize| if n % 2 == 1 { n } else { n.saturating_sub(1) };
        let data = match data {
            TensorData::I8(v) => { let n = take(v.len().saturating_sub(cut)); TensorData::I8(v[..n].to_vec()) }
            TensorData::U8(v) => { let n = take(v.len().saturating_sub(cut)); TensorData::U8(v[..n].to_vec()) }
            other => other,
        };
        let packed = pack(dtype, &data).unwrap();
        prop_assert_eq!(unpack(dtype, data.len() as u64, &packed).unwrap(), data);
    }

    #[test]
    fn f32_round_trips_bit_for_bit(bits in prop::collection::vec(any::<u32>(), 0..100)) {
        let data = TensorData::F32(bits.iter().map(|&b| f32::from_bits(b)).collect());
        let packed = pack(DType::F32, &data).unwrap();
        prop_assert_eq!(packed.len(), bits.len() * 4);
        let TensorData::F32(back) = unpack(DType::F32, bits.len() as u64, &packed).unwrap() else {
            panic!("f32 unpacks to f32 storage");
        };
        prop_assert_eq!(back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), bits);
    }

    #[test]
    fn wide_ints_round_trip(a in prop::collection::vec(any::<i32>(), 0..100),
                            b in prop::collection::vec(any::<i64>(), 0..100)) {
        let a = TensorData::I32(a);
        let b = TensorData::I64(b);
        let pa = pack(DType::I32, &a).unwrap();
        let pb = pack(DType::I64, &b).unwrap();
        prop_assert_eq!(pa.len(), a.len() * 4);
        prop_assert_eq!(pb.len(), b.len() * 8);
        prop_assert_eq!(unpack(DType::I32, a.len() as u64, &pa).unwrap(), a);
        prop_assert_eq!(unpack(DType::I64, b.len() as u64, &pb).unwrap(), b);
    }

    #[test]
    fn unpack_of_arbitrary_bytes_never_panics(dtype in prop::sample::select(low_bit_dtypes()),
                                              bytes in prop::collection::vec(any::<u8>(), 0..64),
                                              n in 0u64..300) {
        // Either a clean error or a tensor of exactly n in-range elements.
        if let Ok(t) = unpack(dtype, n, &bytes) {
            prop_assert_eq!(t.len() as u64, n);
            prop_assert!(t.holds(dtype));
        }
    }
}

#[test]
fn golden_layouts() {
    // Ternary, 2 bits LSB-first: 01 11 00 01 | 11 -> 0x4D 0x03.
    let t = TensorData::I8(vec![1, -1, 0, 1, -1]);
    assert_eq!(pack(DType::Ternary, &t).unwrap(), vec![0x4D, 0x03]);
    // u3 straddles bytes: 1,2,3,4,5 -> 0xD1 0x58.
    let u3 = DType::int(false, 3).unwrap();
    assert_eq!(
        pack(u3, &TensorData::U8(vec![1, 2, 3, 4, 5])).unwrap(),
        vec![0xD1, 0x58]
    );
    // i3 two's complement: -1=111, 3=011, -4=100 -> 0x1F 0x01.
    let i3 = DType::int(true, 3).unwrap();
    assert_eq!(
        pack(i3, &TensorData::I8(vec![-1, 3, -4])).unwrap(),
        vec![0x1F, 0x01]
    );
    assert_eq!(
        pack(DType::F32, &TensorData::F32(vec![1.0])).unwrap(),
        vec![0, 0, 0x80, 0x3F]
    );
    // A ternary weight of 36864 elements packs into exactly 9216 bytes.
    assert_eq!(packed_len(DType::Ternary, 64 * 64 * 9), Some(9216));
}

#[test]
fn pack_rejects_out_of_range_and_wrong_storage() {
    let u3 = DType::int(false, 3).unwrap();
    assert!(matches!(
        pack(u3, &TensorData::U8(vec![0, 8])),
        Err(PackError::OutOfRange {
            index: 1,
            value: 8,
            ..
        })
    ));
    assert!(matches!(
        pack(DType::Ternary, &TensorData::I8(vec![-2])),
        Err(PackError::OutOfRange { .. })
    ));
    assert!(matches!(
        pack(u3, &TensorData::I8(vec![0])),
        Err(PackError::Storage { .. })
    ));
}

#[test]
fn unpack_is_strict() {
    let u3 = DType::int(false, 3).unwrap();
    // Length must be exact: 5 u3 elements need 2 bytes.
    assert!(matches!(
        unpack(u3, 5, &[0xD1]),
        Err(PackError::Length {
            expected: 2,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        unpack(u3, 5, &[0xD1, 0x58, 0]),
        Err(PackError::Length { .. })
    ));
    // The top bit of the second byte is padding and must be zero.
    assert!(matches!(
        unpack(u3, 5, &[0xD1, 0xD8]),
        Err(PackError::Padding { .. })
    ));
    // Ternary code 0b10 is not a ternary value.
    assert!(matches!(
        unpack(DType::Ternary, 2, &[0b1000]),
        Err(PackError::TernaryCode { index: 1 })
    ));
    // Huge counts are rejected by the length check without allocating.
    assert!(matches!(
        unpack(DType::F32, u64::MAX / 2, &[]),
        Err(PackError::Overflow { .. })
    ));
    assert!(matches!(
        unpack(DType::I64, 1 << 40, &[0; 8]),
        Err(PackError::Length { .. })
    ));
}
