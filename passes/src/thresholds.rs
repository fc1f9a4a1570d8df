//! Exact rationals and the per-channel threshold tables of integer requantization.
//!
//! A requantized layer's output level is `f(acc) = clamp(rhe(clip(acc·A + B, lo, hi) /
//! s_y), qmin, qmax)`: `A` collects the input and weight scales (and any affine factor of
//! an unfoldable BatchNorm, or a pooling divisor), `B` the bias / affine offset, `lo`/`hi`
//! a ReLU or clip left between the accumulator and the quantizer, `s_y` the output scale,
//! `rhe` round-half-to-even. Every parameter is an f32 (a dyadic rational) or an integer
//! divisor, so `A`, `B`, `lo`, `hi`, `s_y` are exact [`Rat`]ionals and [`LevelFn::eval`]
//! evaluates `f` *exactly*, ties included.
//!
//! `f` is monotone in `acc` (non-decreasing for `A ≥ 0`, non-increasing for `A < 0`:
//! `clip`, division by `s_y > 0`, `rhe` and `clamp` all preserve order), so it is a step
//! function, represented exactly by `qmax - qmin` thresholds per channel (the contract
//! of `requantize`): ascending, `T[k]` is the smallest accumulator with `f(acc) ≥ qmin +
//! k + 1`; descending, the largest. Each bound is first computed in f64 from the
//! parameters, then corrected by evaluating `f` exactly at the neighbouring integers (so
//! ties follow half-to-even), with an exact binary search as the fallback if the f64
//! guess is off by more than a few steps. Bounds are clamped to i32: a level reached by
//! every accumulator gets `i32::MIN` (ascending) / `i32::MAX` (descending), which counts
//! it for every `acc`; a level never reached gets `i32::MAX` / `i32::MIN`, which counts
//! it only for the single accumulator `i32::MAX` / `i32::MIN` — a value no qconv, qgemm,
//! scaled_add or sum pool of 2..8-bit operands reaches in a network of realistic size.
//!
//! Soundness: the integer semantics is thus the exact real arithmetic of the fake-quant
//! formula with its f32 parameters. The f32 fake-quant interpreter differs only by its
//! own float rounding (of the dequantized products, the f32 sum, the division by `s_y`),
//! which can move a value sitting within a few ulps of a rounding tie across it: a
//! ≤ 1-LSB difference on a tiny fraction of elements. Rational arithmetic is in checked
//! i128; if an intermediate overflows (only for parameters whose binary exponents differ
//! by ~2^60, far outside trained networks) `eval` falls back to f64 for that point.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// An exact rational `num / den` in lowest terms with `den > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rat {
    num: i128,
    den: i128,
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a as i128
}

impl Rat {
    pub const ZERO: Rat = Rat { num: 0, den: 1 };
    pub const ONE: Rat = Rat { num: 1, den: 1 };

    /// `num / den` reduced; None if `den == 0` or on overflow.
    pub fn new(num: i128, den: i128) -> Option<Rat> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            num = num.checked_neg()?;
            den = den.checked_neg()?;
        }
        Some(Rat { num, den })
    }

    pub fn int(i: i64) -> Rat {
        Rat {
            num: i128::from(i),
            den: 1,
        }
    }

    pub fn num(self) -> i128 {
        self.num
    }

    pub fn den(self) -> i128 {
        self.den
    }

    /// The exact value of a finite f64 (None for NaN, ±inf, or magnitudes whose
    /// denominator does not fit i128).
    pub fn from_f64(x: f64) -> Option<Rat> {
        if !x.is_finite() {
            return None;
        }
        if x == 0.0 {
            return Some(Rat::ZERO);
        }
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        let frac = (bits & ((1u64 << 52) - 1)) as i128;
        let (mant, e) = if exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1i128 << 52), exp - 1075)
        };
        let mant = if x < 0.0 { -mant } else { mant };
        let tz = mant.trailing_zeros() as i32;
        let (mant, e) = (mant >> tz, e + tz);
        if e >= 0 {
            let num = if e >= 126 {
                None
            } else {
                mant.checked_mul(1i128 << e)
            };
            Rat::new(num?, 1)
        } else if -e <= 126 {
            Rat::new(mant, 1i128 << -e)
        } else {
            None
        }
    }

    /// The exact value of a finite f32.
    pub fn from_f32(x: f32) -> Option<Rat> {
        Rat::from_f64(f64::from(x))
    }

    /// Nearest f64 (approximate when num or den exceed 2^53).
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    pub fn signum(self) -> i32 {
        self.num.signum() as i32
    }

    pub fn is_integer(self) -> bool {
        self.den == 1
    }

    pub fn checked_neg(self) -> Option<Rat> {
        Some(Rat {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    pub fn checked_add(self, o: Rat) -> Option<Rat> {
        let g = gcd(self.den, o.den);
        let l = (self.den / g).checked_mul(o.den)?;
        let a = self.num.checked_mul(l / self.den)?;
        let b = o.num.checked_mul(l / o.den)?;
        Rat::new(a.checked_add(b)?, l)
    }

    pub fn checked_sub(self, o: Rat) -> Option<Rat> {
        self.checked_add(o.checked_neg()?)
    }

    pub fn checked_mul(self, o: Rat) -> Option<Rat> {
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        let num = (self.num / g1).checked_mul(o.num / g2)?;
        let den = (self.den / g2).checked_mul(o.den / g1)?;
        Rat::new(num, den)
    }

    pub fn recip(self) -> Option<Rat> {
        Rat::new(self.den, self.num)
    }

    pub fn checked_div(self, o: Rat) -> Option<Rat> {
        self.checked_mul(o.recip()?)
    }

    /// Exact comparison; None on overflow.
    pub fn checked_cmp(self, o: Rat) -> Option<Ordering> {
        Some(self.checked_sub(o)?.num.cmp(&0))
    }

    /// Round half to even, exactly.
    pub fn round_half_even(self) -> i128 {
        let fl = self.num.div_euclid(self.den);
        let rem2 = self.num.rem_euclid(self.den) * 2;
        match rem2.cmp(&self.den) {
            Ordering::Less => fl,
            Ordering::Greater => fl + 1,
            Ordering::Equal => fl + (fl & 1),
        }
    }
}

impl PartialOrd for Rat {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Exact when the cross terms fit i128, otherwise by f64 then by the raw parts (a total
/// order either way, as `Ord` requires).
impl Ord for Rat {
    fn cmp(&self, other: &Self) -> Ordering {
        self.checked_cmp(*other).unwrap_or_else(|| {
            self.to_f64()
                .total_cmp(&other.to_f64())
                .then((self.num, self.den).cmp(&(other.num, other.den)))
        })
    }
}

impl fmt::Display for Rat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl FromStr for Rat {
    type Err = String;
    fn from_str(s: &str) -> Result<Rat, String> {
        let bad = || format!("not a rational: {s}");
        let (n, d) = s.split_once('/').unwrap_or((s, "1"));
        let n: i128 = n.parse().map_err(|_| bad())?;
        let d: i128 = d.parse().map_err(|_| bad())?;
        Rat::new(n, d).ok_or_else(bad)
    }
}

/// The level function of one output channel (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct LevelFn {
    /// Real value per accumulator unit.
    pub a: Rat,
    /// Real offset.
    pub b: Rat,
    /// Output quantizer scale (> 0).
    pub scale: Rat,
    pub qmin: i64,
    pub qmax: i64,
    /// Clip of the real value before quantization (ReLU: `lo = 0`).
    pub lo: Option<Rat>,
    pub hi: Option<Rat>,
}

/// One channel's thresholds in `requantize` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelThresholds {
    pub t: Vec<i32>,
    pub descending: bool,
}

impl LevelFn {
    /// The exact output level for accumulator `acc`.
    pub fn eval(&self, acc: i64) -> i64 {
        let exact = || -> Option<i128> {
            let mut y = Rat::int(acc).checked_mul(self.a)?.checked_add(self.b)?;
            if let Some(lo) = self.lo {
                y = y.max(lo);
            }
            if let Some(hi) = self.hi {
                y = y.min(hi);
            }
            Some(y.checked_div(self.scale)?.round_half_even())
        };
        let level = exact().unwrap_or_else(|| {
            let mut y = acc as f64 * self.a.to_f64() + self.b.to_f64();
            if let Some(lo) = self.lo {
                y = y.max(lo.to_f64());
            }
            if let Some(hi) = self.hi {
                y = y.min(hi.to_f64());
            }
            (y / self.scale.to_f64()).round_ties_even() as i128
        });
        level.clamp(i128::from(self.qmin), i128::from(self.qmax)) as i64
    }

    /// The f64 estimate of the accumulator where `f` crosses into `level`.
    fn guess(&self, level: i64) -> i64 {
        let t = ((level as f64 - 0.5) * self.scale.to_f64() - self.b.to_f64()) / self.a.to_f64();
        if t.is_nan() {
            0
        } else {
            t.ceil().clamp(i32::MIN as f64, i32::MAX as f64) as i64
        }
    }

    /// The thresholds of this channel (`qmax - qmin` of them).
    pub fn thresholds(&self) -> ChannelThresholds {
        let descending = self.a.signum() < 0;
        let (min, max) = (i64::from(i32::MIN), i64::from(i32::MAX));
        // `reach(acc)`: f(acc) ≥ level, monotone in acc (true towards `far`).
        let (near, far) = if descending { (max, min) } else { (min, max) };
        let t = (self.qmin + 1..=self.qmax)
            .map(|level| {
                let reach = |acc: i64| self.eval(acc) >= level;
                let bound = if reach(near) {
                    near
                } else if !reach(far) {
                    far
                } else {
                    self.crossing(level, near, far, &reach)
                };
                bound as i32
            })
            .collect();
        ChannelThresholds { t, descending }
    }

    /// The accumulator closest to `near` with `reach` true, knowing `reach(near)` is
    /// false and `reach(far)` true: the f64 guess corrected by exact evaluation.
    fn crossing(&self, level: i64, near: i64, far: i64, reach: &dyn Fn(i64) -> bool) -> i64 {
        let step = if far > near { 1 } else { -1 };
        let clamp = |t: i64| t.clamp(near.min(far), near.max(far));
        let mut t = clamp(self.guess(level));
        if step < 0 {
            // Descending: the last accumulator still reaching `level` is the floor.
            t = clamp(t - 1);
        }
        for _ in 0..8 {
            let here = reach(t);
            let before = t != near && reach(t - step);
            if here && !before {
                return t;
            }
            t = clamp(if here { t - step } else { t + step });
        }
        // Exact bisection: `lo_side` never reaches, `hi_side` reaches.
        let (mut lo_side, mut hi_side) = (near, far);
        while (hi_side - lo_side).abs() > 1 {
            let mid = lo_side + (hi_side - lo_side) / 2;
            if reach(mid) {
                hi_side = mid;
            } else {
                lo_side = mid;
            }
        }
        hi_side
    }
}
