//! Parallel, reproducible random fills for parameter initialisation.
//!
//! A fill is identified by a [`StreamKey`] (a user seed and a stream id that
//! the caller advances once per fill). The destination is cut into fixed
//! chunks of [`CHUNK`] elements; chunk `k` draws from its own xoshiro256++
//! generator whose state is derived by hashing `(seed, stream, k)`. Because
//! the chunk boundaries and the per-chunk generators do not depend on how the
//! chunks are scheduled, the values are the same for any number of rayon
//! threads, while every chunk is filled in place, in parallel, without
//! temporaries.
//!
//! Uniform draws use 24 random bits per value for `f32`/`f16`/`bf16` outputs
//! (two values per 64-bit draw) and 53 bits for `f64`. Normal draws use a
//! 256-layer ziggurat (Marsaglia & Tsang) computed in `f64`.
//!
//! This module owns only the numeric kernels; it knows nothing of Python,
//! of MXNet's initializer semantics or of where the seed comes from.

use std::sync::OnceLock;

use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// Elements per independently seeded chunk. Fixed: changing it changes every
/// value drawn for a given seed.
pub const CHUNK: usize = 1 << 16;

/// Identifies one fill: the user's seed and a per-fill stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// The seed given to `mxparams.random.seed` (or drawn from OS entropy).
    pub seed: u64,
    /// Advanced by the caller for every fill, so successive fills differ.
    pub stream: u64,
}

impl StreamKey {
    /// A key for `stream` under `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        StreamKey { seed, stream }
    }

    /// The generator for chunk `index` of this fill.
    fn chunk_rng(self, index: u64) -> Xoshiro256pp {
        // Chained bijective mixes: distinct (seed, stream, chunk) triples give
        // unrelated 64-bit states (collisions only at hash-collision odds).
        let mut h = mix64(self.seed ^ 0x6a09_e667_f3bc_c909);
        h = mix64(h ^ self.stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        h = mix64(h ^ index.wrapping_mul(0xbf58_476d_1ce4_e5b9));
        Xoshiro256pp::from_splitmix(h)
    }
}

/// SplitMix64's output function: a bijective 64-bit mixer.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256++ (Blackman & Vigna): small, fast, and good in every bit.
///
/// Our own rather than `rand_xoshiro`'s: the fill kernels need the generator
/// inlined into their loops with no trait objects or `rand_core` API in between,
/// and the seeding (SplitMix64 of a hashed `(seed, stream, chunk)`) is part of the
/// reproducibility contract, so it must not change with a dependency's version.
/// The tests check both the stream and the seeding against `rand_xoshiro`
/// (`Xoshiro256PlusPlus::seed_from_u64`), which they reproduce exactly.
struct Xoshiro256pp {
    s: [u64; 4],
}

impl Xoshiro256pp {
    fn from_splitmix(mut state: u64) -> Self {
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(state)
        };
        // SplitMix64 never yields four zero words in a row, so the state is valid.
        Xoshiro256pp {
            s: [next(), next(), next(), next()],
        }
    }

    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = self.s;
        let result = s0.wrapping_add(s3).rotate_left(23).wrapping_add(s0);
        let t = s1 << 17;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        let s2 = s2 ^ t;
        let s3 = s3.rotate_left(45);
        self.s = [s0, s1, s2, s3];
        result
    }

    /// Uniform in `(0, 1]`, 53 bits.
    #[inline(always)]
    fn open_closed01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as i64 + 1) as f64 * F64_ULP
    }

    /// Uniform in `[0, 1)`, 53 bits.
    #[inline(always)]
    fn closed_open01(&mut self) -> f64 {
        (self.next_u64() >> 11) as i64 as f64 * F64_ULP
    }
}

const F64_ULP: f64 = 1.0 / (1u64 << 53) as f64;
const F32_ULP: f32 = 1.0 / (1u32 << 24) as f32;

/// A floating-point element type the fills can write.
pub trait FillElement: Copy + Send + Sync + PartialOrd + 'static {
    /// Whether uniform draws need 53 random bits (else 24).
    const WIDE: bool;
    /// Rounds an `f32` to this type.
    fn from_f32(v: f32) -> Self;
    /// Rounds an `f64` to this type.
    fn from_f64(v: f64) -> Self;
    /// Widens exactly to `f64`.
    fn to_f64(self) -> f64;
    /// The next representable value towards negative infinity.
    fn next_down(self) -> Self;
    /// The next representable value towards positive infinity.
    fn next_up(self) -> Self;
}

/// `next_down`/`next_up` on the raw bits of a sign-magnitude IEEE format.
macro_rules! ieee_steps {
    ($bits:ty, $to:expr, $from:expr) => {
        fn next_down(self) -> Self {
            let to: fn(Self) -> $bits = $to;
            let from: fn($bits) -> Self = $from;
            let sign: $bits = 1 << (<$bits>::BITS - 1);
            let b = to(self);
            if self.partial_cmp(&self).is_none() {
                self
            } else if b & !sign == 0 {
                from(sign | 1)
            } else if b & sign == 0 {
                from(b - 1)
            } else {
                from(b + 1)
            }
        }

        fn next_up(self) -> Self {
            let to: fn(Self) -> $bits = $to;
            let from: fn($bits) -> Self = $from;
            let sign: $bits = 1 << (<$bits>::BITS - 1);
            let b = to(self);
            if self.partial_cmp(&self).is_none() {
                self
            } else if b & !sign == 0 {
                from(1)
            } else if b & sign == 0 {
                from(b + 1)
            } else {
                from(b - 1)
            }
        }
    };
}

impl FillElement for f32 {
    const WIDE: bool = false;
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    ieee_steps!(u32, f32::to_bits, f32::from_bits);
}

impl FillElement for f64 {
    const WIDE: bool = true;
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    ieee_steps!(u64, f64::to_bits, f64::from_bits);
}

impl FillElement for f16 {
    const WIDE: bool = false;
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    ieee_steps!(u16, f16::to_bits, f16::from_bits);
}

impl FillElement for bf16 {
    const WIDE: bool = false;
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    ieee_steps!(u16, bf16::to_bits, bf16::from_bits);
}

/// Runs `fill_chunk(rng, chunk)` over every chunk of `out`, in parallel.
fn for_each_chunk<T, F>(out: &mut [T], key: StreamKey, fill_chunk: F)
where
    T: Send,
    F: Fn(&mut Xoshiro256pp, &mut [T]) + Sync,
{
    if out.len() <= CHUNK {
        fill_chunk(&mut key.chunk_rng(0), out);
        return;
    }
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(index, chunk)| fill_chunk(&mut key.chunk_rng(index as u64), chunk));
}

/// The representable range `[lo, hi]` of `T` inside `[low, high)`, or `None`
/// when it is empty.
fn representable_range<T: FillElement>(low: f64, high: f64) -> Option<(T, T)> {
    let mut lo = T::from_f64(low);
    if lo.to_f64() < low {
        lo = lo.next_up();
    }
    let mut hi = T::from_f64(high);
    if hi.to_f64() >= high {
        hi = hi.next_down();
    }
    (lo <= hi).then_some((lo, hi))
}

/// Fills `out` with values drawn uniformly from `[low, high)`.
///
/// Values are computed in `f64` for `f64` outputs and in `f32` otherwise, then
/// rounded to `T` and kept inside the half-open range. `low == high` fills
/// with `low` (MXNet's `Uniform(0)`).
///
/// # Errors
/// [`Error::InvalidArgument`] if a bound is not finite or `low > high`.
///
/// ```
/// use mxparams::random::{fill_uniform, StreamKey};
/// let mut a = vec![0f32; 1000];
/// fill_uniform(&mut a, -0.5, 0.5, StreamKey::new(7, 0)).unwrap();
/// assert!(a.iter().all(|&v| (-0.5..0.5).contains(&v)));
/// ```
pub fn fill_uniform<T: FillElement>(
    out: &mut [T],
    low: f64,
    high: f64,
    key: StreamKey,
) -> Result<()> {
    if !low.is_finite() || !high.is_finite() || low > high {
        return Err(Error::InvalidArgument(format!(
            "uniform bounds must be finite with low <= high, got low={low}, high={high}"
        )));
    }
    let Some((lo, hi)) = representable_range::<T>(low, high) else {
        // An empty (or sub-ulp) range: every draw rounds to `low`.
        let v = T::from_f64(low);
        out.par_iter_mut().for_each(|x| *x = v);
        return Ok(());
    };
    let clamp = move |v: T| {
        if v > hi {
            hi
        } else if v < lo {
            lo
        } else {
            v
        }
    };
    if T::WIDE {
        let span = high - low;
        for_each_chunk(out, key, |rng, chunk| {
            for x in chunk {
                *x = clamp(T::from_f64(low + span * rng.closed_open01()));
            }
        });
    } else {
        let (low32, span32) = (low as f32, (high - low) as f32);
        for_each_chunk(out, key, |rng, chunk| {
            let mut pairs = chunk.chunks_exact_mut(2);
            for pair in &mut pairs {
                let r = rng.next_u64();
                let u0 = (r >> 40) as u32 as f32 * F32_ULP;
                let u1 = ((r >> 8) as u32 & 0x00ff_ffff) as f32 * F32_ULP;
                pair[0] = clamp(T::from_f32(low32 + span32 * u0));
                pair[1] = clamp(T::from_f32(low32 + span32 * u1));
            }
            if let [last] = pairs.into_remainder() {
                let u = (rng.next_u64() >> 40) as u32 as f32 * F32_ULP;
                *last = clamp(T::from_f32(low32 + span32 * u));
            }
        });
    }
    Ok(())
}

/// Fills `out` with draws from a normal distribution `N(mean, std²)`.
///
/// # Errors
/// [`Error::InvalidArgument`] if `mean` or `std` is not finite or `std < 0`.
///
/// ```
/// use mxparams::random::{fill_normal, StreamKey};
/// let mut a = vec![0f64; 100_000];
/// fill_normal(&mut a, 1.0, 2.0, StreamKey::new(7, 1)).unwrap();
/// let mean = a.iter().sum::<f64>() / a.len() as f64;
/// assert!((mean - 1.0).abs() < 0.05);
/// ```
pub fn fill_normal<T: FillElement>(
    out: &mut [T],
    mean: f64,
    std: f64,
    key: StreamKey,
) -> Result<()> {
    if !mean.is_finite() || !std.is_finite() || std < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "normal parameters must be finite with std >= 0, got mean={mean}, std={std}"
        )));
    }
    let table = ziggurat_table();
    if T::WIDE {
        for_each_chunk(out, key, |rng, chunk| {
            for x in chunk {
                *x = T::from_f64(mean + std * table.sample(rng));
            }
        });
    } else {
        // Two 32-bit ziggurat draws per 64-bit word: enough precision for
        // 24-bit (or narrower) outputs, at half the generator cost.
        let (mean32, std32) = (mean as f32, std as f32);
        for_each_chunk(out, key, |rng, chunk| {
            let mut pairs = chunk.chunks_exact_mut(2);
            for pair in &mut pairs {
                let r = rng.next_u64();
                let a = table.sample32(r as u32, rng);
                let b = table.sample32((r >> 32) as u32, rng);
                pair[0] = T::from_f32(mean32 + std32 * a);
                pair[1] = T::from_f32(mean32 + std32 * b);
            }
            if let [last] = pairs.into_remainder() {
                let a = table.sample32(rng.next_u64() as u32, rng);
                *last = T::from_f32(mean32 + std32 * a);
            }
        });
    }
    Ok(())
}

/// A distribution to fill with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Uniform on `[low, high)`.
    Uniform {
        /// Inclusive lower bound.
        low: f64,
        /// Exclusive upper bound.
        high: f64,
    },
    /// Normal with mean `mean` and standard deviation `std`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

impl Distribution {
    /// MXNet's rule for sampling parameters, with its messages: uniform
    /// needs `low <= high`, normal a positive standard deviation.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the rule is broken (NaN included).
    pub fn check(self) -> Result<()> {
        match self {
            Distribution::Uniform { low, high } if !matches!(low.partial_cmp(&high), Some(o) if o.is_le()) => {
                Err(Error::InvalidArgument(format!(
                    "low must be less or equal to high in uniform distribution: {low:?} > {high:?}"
                )))
            }
            Distribution::Normal { std, .. } if !matches!(std.partial_cmp(&0.0), Some(o) if o.is_gt()) => {
                Err(Error::InvalidArgument(format!(
                    "scale parameter in gaussian has to be positive, got {std:?}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether a fill with these parameters runs: [`Distribution::check`]
    /// passes and every parameter is finite.
    pub fn is_valid(self) -> bool {
        let finite = match self {
            Distribution::Uniform { low, high } => low.is_finite() && high.is_finite(),
            Distribution::Normal { mean, std } => mean.is_finite() && std.is_finite(),
        };
        finite && self.check().is_ok()
    }

    /// Fills a typed slice ([`fill_uniform`] or [`fill_normal`]).
    ///
    /// # Errors
    /// As those functions.
    pub fn fill<T: FillElement>(self, out: &mut [T], key: StreamKey) -> Result<()> {
        match self {
            Distribution::Uniform { low, high } => fill_uniform(out, low, high, key),
            Distribution::Normal { mean, std } => fill_normal(out, mean, std, key),
        }
    }

    /// Fills a native-endian buffer of `dtype` elements (an NDArray's bytes).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-float dtype, a length that is not a
    /// whole number of elements, a buffer not aligned for the element type, or
    /// bad distribution parameters.
    ///
    /// ```
    /// use mxparams::random::{Distribution, StreamKey};
    /// use mxparams::DType;
    /// let mut bytes = vec![0f32; 8]; // f32 storage keeps the bytes aligned
    /// let raw: &mut [u8] = unsafe {
    ///     std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), 32)
    /// };
    /// Distribution::Uniform { low: 1.0, high: 2.0 }
    ///     .fill_bytes(raw, DType::Float32, StreamKey::new(1, 0))
    ///     .unwrap();
    /// assert!(bytes.iter().all(|&v| (1.0..2.0).contains(&v)));
    /// ```
    pub fn fill_bytes(self, bytes: &mut [u8], dtype: DType, key: StreamKey) -> Result<()> {
        match dtype {
            DType::Float32 => self.fill(cast_slice::<f32>(bytes, dtype)?, key),
            DType::Float64 => self.fill(cast_slice::<f64>(bytes, dtype)?, key),
            DType::Float16 => self.fill(
                cast_slice::<u16>(bytes, dtype)?.reinterpret_cast_mut::<f16>(),
                key,
            ),
            DType::BFloat16 => self.fill(
                cast_slice::<u16>(bytes, dtype)?.reinterpret_cast_mut::<bf16>(),
                key,
            ),
            other => Err(Error::InvalidArgument(format!(
                "random fills need a float32, float64, float16 or bfloat16 array, not {other}"
            ))),
        }
    }
}

/// Writes `value`, converted to `dtype` exactly as a fill rounds, into every
/// element of `bytes` (native-endian `dtype` elements; float dtypes only).
///
/// # Errors
/// As [`Distribution::fill_bytes`].
pub fn fill_constant(bytes: &mut [u8], dtype: DType, value: f64) -> Result<()> {
    let size = dtype.itemsize();
    let Some((first, rest)) = bytes.split_at_mut_checked(size) else {
        return Ok(());
    };
    // One element converted through a one-value range; `elem` keeps it aligned.
    let mut elem = [0u64; 1];
    // SAFETY: u8 has no alignment or validity requirements; `elem` holds 8 bytes.
    let raw = unsafe { std::slice::from_raw_parts_mut(elem.as_mut_ptr().cast::<u8>(), 8) };
    let raw = raw
        .get_mut(..size)
        .ok_or_else(|| Error::InvalidArgument(format!("no constant fill for {dtype}")))?;
    Distribution::Uniform {
        low: value,
        high: value,
    }
    .fill_bytes(raw, dtype, StreamKey::new(0, 0))?;
    first.copy_from_slice(raw);
    for chunk in rest.chunks_exact_mut(size) {
        chunk.copy_from_slice(raw);
    }
    Ok(())
}

/// Marker for plain numeric types every bit pattern of which is a valid value.
trait Pod: Copy {}
impl Pod for f32 {}
impl Pod for f64 {}
impl Pod for u16 {}

/// Views `bytes` as a slice of `T`, if it is aligned and a whole number of elements.
fn cast_slice<T: Pod>(bytes: &mut [u8], dtype: DType) -> Result<&mut [T]> {
    // SAFETY: `T` is f32, f64 or u16 (the sealed `Pod`), for which every bit
    // pattern is valid, and `align_to_mut` only yields a middle part that is
    // correctly aligned and sized for `T`.
    let (head, mid, tail) = unsafe { bytes.align_to_mut::<T>() };
    if !head.is_empty() || !tail.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "a {dtype} buffer must be aligned to {} bytes and hold whole elements",
            std::mem::align_of::<T>()
        )));
    }
    Ok(mid)
}

/// Layers of the ziggurat.
const LAYERS: usize = 256;
/// Start of the tail for 256 layers (Marsaglia & Tsang 2000).
const ZIG_R: f64 = 3.654_152_885_361_009;
/// Area of each layer under the unnormalised density `exp(-x²/2)`.
const ZIG_V: f64 = 4.928_673_233_99e-3;

/// Layer edges `x[i]` (decreasing, `x[LAYERS] = 0`) and `f(x[i])`.
///
/// Our own rather than `rand_distr::StandardNormal`: that one draws one value per
/// 64-bit word and its output may change between its versions, while ours takes two
/// 32-bit draws per word for `f32`-and-narrower outputs and its values, for a given
/// seed, are part of what `mxparams.random.seed` promises to reproduce.
struct Ziggurat {
    x: [f64; LAYERS + 1],
    f: [f64; LAYERS + 1],
    /// `x` rounded to `f32`, for the 32-bit fast path.
    x32: [f32; LAYERS + 1],
}

fn density(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

fn ziggurat_table() -> &'static Ziggurat {
    static TABLE: OnceLock<Ziggurat> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut x = [0.0; LAYERS + 1];
        // Layer 0 is the base strip plus the tail; its pseudo-width makes its
        // area V like the others.
        x[0] = ZIG_V / density(ZIG_R);
        x[1] = ZIG_R;
        for i in 1..LAYERS - 1 {
            let y = ZIG_V / x[i] + density(x[i]);
            x[i + 1] = if y >= 1.0 {
                0.0
            } else {
                (-2.0 * y.ln()).sqrt()
            };
        }
        x[LAYERS] = 0.0;
        let mut f = [0.0; LAYERS + 1];
        for (fi, xi) in f.iter_mut().zip(x.iter()) {
            *fi = density(*xi);
        }
        let x32 = x.map(|v| v as f32);
        Ziggurat { x, f, x32 }
    })
}

impl Ziggurat {
    /// One standard normal draw.
    #[inline(always)]
    fn sample(&self, rng: &mut Xoshiro256pp) -> f64 {
        loop {
            let bits = rng.next_u64();
            let i = (bits & 0xff) as usize;
            // Symmetric uniform in (-1, 1) from the 53 high bits.
            let u = (((bits >> 11) as i64) as f64 + 0.5) * (2.0 * F64_ULP) - 1.0;
            let x = u * self.x[i];
            if x.abs() < self.x[i + 1] {
                return x;
            }
            if i == 0 {
                return self.tail(rng, u < 0.0);
            }
            let y = self.f[i] + rng.closed_open01() * (self.f[i + 1] - self.f[i]);
            if y < density(x) {
                return x;
            }
        }
    }

    /// One standard normal draw from 32 random bits (more only when rejected).
    #[inline(always)]
    fn sample32(&self, bits: u32, rng: &mut Xoshiro256pp) -> f32 {
        let i = (bits & 0xff) as usize;
        // Symmetric uniform in (-1, 1) from the 24 high bits.
        let u = ((bits >> 8) as f32 + 0.5) * (2.0 * F32_ULP) - 1.0;
        let x = u * self.x32[i];
        if x.abs() < self.x32[i + 1] {
            return x;
        }
        self.sample32_slow(i, x, rng)
    }

    /// The wedge and tail cases of [`Self::sample32`]: the same layer and `x`,
    /// tested exactly; a rejection restarts with a fresh (exact) draw.
    #[cold]
    fn sample32_slow(&self, i: usize, x: f32, rng: &mut Xoshiro256pp) -> f32 {
        if i == 0 {
            return self.tail(rng, x < 0.0) as f32;
        }
        let y = self.f[i] + rng.closed_open01() * (self.f[i + 1] - self.f[i]);
        if y < density(f64::from(x)) {
            return x;
        }
        self.sample(rng) as f32
    }

    /// A draw from the tail beyond `ZIG_R` (Marsaglia 1964).
    #[cold]
    fn tail(&self, rng: &mut Xoshiro256pp, negative: bool) -> f64 {
        loop {
            let x = -rng.open_closed01().ln() / ZIG_R;
            let y = -rng.open_closed01().ln();
            if 2.0 * y > x * x {
                let v = ZIG_R + x;
                return if negative { -v } else { v };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_xoshiro::rand_core::{RngCore, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn generator_is_xoshiro256pp_seeded_by_splitmix64() {
        for seed in [0, 1, 42, 0x9e37_79b9_7f4a_7c15, u64::MAX] {
            let mut ours = Xoshiro256pp::from_splitmix(seed);
            let mut reference = Xoshiro256PlusPlus::seed_from_u64(seed);
            for i in 0..1000 {
                assert_eq!(
                    ours.next_u64(),
                    reference.next_u64(),
                    "seed {seed}, draw {i}"
                );
            }
        }
    }

    fn moments(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn ziggurat_table_closes_at_zero() {
        let t = ziggurat_table();
        assert!(
            t.x[LAYERS - 1] > 0.0 && t.x[LAYERS - 1] < 0.3,
            "{}",
            t.x[LAYERS - 1]
        );
        for i in 1..LAYERS {
            assert!(t.x[i] > t.x[i + 1], "layer {i} not decreasing");
        }
        // The top layer's area is V too (the recurrence's consistency check).
        let top = t.x[LAYERS - 1] * (1.0 - t.f[LAYERS - 1]);
        assert!((top - ZIG_V).abs() < 1e-6, "top layer area {top}");
    }

    #[test]
    fn same_values_for_any_thread_count() {
        let n = 3 * CHUNK + 17;
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            pool.install(|| {
                let mut u = vec![0f32; n];
                let mut g = vec![0f32; n];
                fill_uniform(&mut u, -1.0, 1.0, StreamKey::new(42, 3)).expect("uniform");
                fill_normal(&mut g, 0.0, 1.0, StreamKey::new(42, 4)).expect("normal");
                (u, g)
            })
        };
        assert_eq!(run(1), run(4));
    }

    #[test]
    fn streams_and_seeds_differ() {
        let draw = |seed, stream| {
            let mut a = vec![0f64; 64];
            fill_uniform(&mut a, 0.0, 1.0, StreamKey::new(seed, stream)).expect("uniform");
            a
        };
        assert_eq!(draw(1, 0), draw(1, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
        assert_ne!(draw(1, 0), draw(2, 0));
    }

    #[test]
    fn uniform_moments_and_bounds() {
        let mut a = vec![0f32; 1 << 20];
        fill_uniform(&mut a, -2.0, 3.0, StreamKey::new(5, 0)).expect("uniform");
        assert!(a.iter().all(|&v| (-2.0..3.0).contains(&v)));
        let v: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
        let (mean, var) = moments(&v);
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!((var - 25.0 / 12.0).abs() < 0.01, "{var}");
    }

    #[test]
    fn uniform_half_types_stay_below_high() {
        let mut h = vec![f16::ZERO; 100_000];
        fill_uniform(&mut h, 0.999, 1.0, StreamKey::new(1, 0)).expect("f16");
        assert!(h.iter().all(|v| v.to_f64() < 1.0 && v.to_f64() >= 0.999));
        let mut b = vec![bf16::ZERO; 100_000];
        fill_uniform(&mut b, -1.0, 1.0, StreamKey::new(1, 0)).expect("bf16");
        assert!(b.iter().all(|v| v.to_f64() < 1.0 && v.to_f64() >= -1.0));
    }

    #[test]
    fn uniform_degenerate_range_fills_low() {
        let mut a = vec![1f32; 10];
        fill_uniform(&mut a, 0.0, 0.0, StreamKey::new(1, 0)).expect("uniform");
        assert!(a.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut a = vec![0f32; 4];
        let k = StreamKey::new(0, 0);
        assert!(fill_uniform(&mut a, 1.0, 0.0, k).is_err());
        assert!(fill_uniform(&mut a, f64::NAN, 0.0, k).is_err());
        assert!(fill_normal(&mut a, 0.0, -1.0, k).is_err());
        assert!(fill_normal(&mut a, 0.0, f64::INFINITY, k).is_err());
    }

    #[test]
    fn normal_moments_and_tails_f64() {
        let mut a = vec![0f64; 1 << 21];
        fill_normal(&mut a, 0.0, 1.0, StreamKey::new(9, 0)).expect("normal");
        check_standard_normal(&a);
    }

    #[test]
    fn normal_moments_and_tails_f32() {
        let mut a = vec![0f32; 1 << 21];
        fill_normal(&mut a, 0.0, 1.0, StreamKey::new(9, 0)).expect("normal");
        check_standard_normal(&a.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
    }

    fn check_standard_normal(a: &[f64]) {
        let (mean, var) = moments(a);
        assert!(mean.abs() < 0.003, "{mean}");
        assert!((var - 1.0).abs() < 0.005, "{var}");
        let n = a.len() as f64;
        let skew = a.iter().map(|x| x.powi(3)).sum::<f64>() / n;
        let kurt = a.iter().map(|x| x.powi(4)).sum::<f64>() / n;
        assert!(skew.abs() < 0.01, "{skew}");
        assert!((kurt - 3.0).abs() < 0.03, "{kurt}");
        // P(|x| > 3) = 0.0026998, P(|x| > 3.6541) (the ziggurat tail) = 0.000258.
        let beyond3 = a.iter().filter(|x| x.abs() > 3.0).count() as f64 / n;
        assert!((beyond3 - 0.0026998).abs() < 0.0003, "{beyond3}");
        let tail = a.iter().filter(|x| x.abs() > ZIG_R).count() as f64 / n;
        assert!((tail - 0.000258).abs() < 0.00006, "{tail}");
    }

    #[test]
    fn normal_cdf_matches_at_quantiles() {
        // Φ at a few points, from tables.
        let points = [
            (-2.0, 0.02275),
            (-1.0, 0.158_655),
            (0.0, 0.5),
            (0.5, 0.691_462),
            (1.5, 0.933_193),
        ];
        let mut a = vec![0f32; 1 << 21];
        fill_normal(&mut a, 0.0, 1.0, StreamKey::new(11, 2)).expect("normal");
        let n = a.len() as f64;
        for (x, cdf) in points {
            let below = a.iter().filter(|&&v| f64::from(v) < x).count() as f64 / n;
            assert!(
                (below - cdf).abs() < 0.0015,
                "Φ({x}) = {below}, expected {cdf}"
            );
        }
    }

    #[test]
    fn fill_bytes_by_dtype() {
        let key = StreamKey::new(3, 1);
        let dist = Distribution::Normal {
            mean: 0.0,
            std: 1.0,
        };
        let mut typed = vec![0f32; 100];
        dist.fill(&mut typed, key).expect("typed");
        let mut words = vec![0f64; 50]; // 400 aligned bytes
        let raw: &mut [u8] = cast_slice_mut_u8(&mut words);
        dist.fill_bytes(&mut raw[..400], DType::Float32, key)
            .expect("bytes");
        let as_f32: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(as_f32, typed);
        for dtype in [DType::Float64, DType::Float16, DType::BFloat16] {
            dist.fill_bytes(raw, dtype, key).expect("float dtype");
        }
        assert!(dist.fill_bytes(raw, DType::Int32, key).is_err());
        assert!(dist
            .fill_bytes(&mut raw[1..9], DType::Float32, key)
            .is_err());
        assert!(dist.fill_bytes(&mut raw[..6], DType::Float32, key).is_err());
    }

    fn cast_slice_mut_u8(words: &mut [f64]) -> &mut [u8] {
        let len = std::mem::size_of_val(words);
        // SAFETY: u8 has no alignment or validity requirements and the length
        // covers exactly the f64 storage, which stays borrowed.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
    }

    #[test]
    fn next_steps() {
        assert_eq!(1f32.next_down(), f32::from_bits(1f32.to_bits() - 1));
        assert_eq!((-1f32).next_up(), -f32::from_bits(1f32.to_bits() - 1));
        assert_eq!(0f64.next_up(), f64::from_bits(1));
        assert!(0f64.next_down() < 0.0);
        assert_eq!(f16::ONE.next_down().next_up(), f16::ONE);
    }
}
