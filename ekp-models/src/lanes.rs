//! Lorenz 96 RK4 for several ensemble members side by side ("lanes").
//!
//! The state of `L` members is stored site-major, `x[site][lane]`, so every
//! arithmetic operation of the RK4 step is done on `L` members at once: the
//! compiler turns each `[T; L]` operation into SIMD instructions. Lane
//! widths that fill whole vector registers (4 f64 or 8 f32 for AVX2, 8 f64
//! or 16 f32 for AVX-512) work best; [`LANES`] is the f64 width
//! [`crate::Lorenz96`]'s batch evaluation and `ekp-cli bench` use,
//! [`LANES_F32`] the f32 width of [`crate::Lorenz96::final_states_into_f32`].
//!
//! **Two precisions.** The kernel is generic over the element type
//! [`LaneReal`] (f64 or f32): [`LaneState<L>`] / [`LaneForcing<L>`] /
//! [`Lane<L>`] are f64 (the type parameter defaults to f64), and
//! [`LaneState32<L>`] / [`LaneForcing32<L>`] (`LaneState<L, f32>`, …) are
//! f32. Both run the same fused RK4 sweep under the same runtime dispatch.
//!
//! **Same bits as the reference.** Each lane performs exactly the operations
//! of the scalar reference, in the same order (Rust never fuses `a*b + c`
//! into an FMA on its own, with or without the `fma` target feature):
//!
//! * f64: every lane is bit-identical to [`crate::lorenz96::rk4_step`] /
//!   [`crate::lorenz96::integrate`], the forcing `F + A·sin(ω t_j)` computed
//!   as [`crate::Forcing::at`] does.
//! * f32: every lane is bit-identical to the scalar f32 reference
//!   [`crate::lorenz96::rk4_step_f32`] / [`crate::lorenz96::integrate_f32`]
//!   (not to the f64 run: f32 trajectories drift away from f64 ones as any
//!   rounding difference does in a chaotic system).
//!
//! The tests assert exact equality for both.
//!
//! **The f32 conventions** (those of the GPU's f32 kernel, `ekp-gpu`):
//!
//! * time stays f64: t_j = `dt * j as f64` with the f64 `dt`;
//! * the forcing: sin(ω t_j) is computed in f64, exactly as
//!   [`crate::Forcing::at`] does (`(omega * t_j).sin()`), rounded to f32,
//!   and `F + A·s` is formed in f32 with F and A rounded to f32
//!   ([`crate::Forcing::at_f32`]);
//! * the step lengths `dt`, `dt/2`, `dt/6` are each computed in f64 from
//!   the f64 `dt` and then rounded to f32 (for f64 these are exactly the
//!   values the f64 reference computes);
//! * everything else (tendencies, stage states, the RK4 sum) is f32
//!   arithmetic; an f64 initial state is rounded to f32
//!   ([`LaneState::fill_from_f64`]).
//!
//! **Runtime CPU dispatch.** The time loop is compiled several times by the
//! `multiversion` crate — for AVX-512, for AVX2+FMA, and for the baseline
//! target — and the best version the running CPU supports is picked at run
//! time (the choice is cached after the first call). No `target-cpu=native`
//! build is needed. The macro-generated dispatch calls the `#[target_feature]`
//! clones with `unsafe` after checking the features; rustc's `unsafe_code`
//! lint does not fire on code expanded from an external macro, so the
//! workspace's `unsafe_code = "forbid"` stands unchanged and no unsafe is
//! written by hand.
//!
//! **f32 speed.** On an AVX2 machine (AMD EPYC VM, one thread, 36 sites,
//! 4096 members × 1000 steps; `cargo run --release -p ekp-models --example
//! lanes_precision`) the f32 kernel at [`LANES_F32`] = 16 integrates
//! ~1.8–1.9× the member-steps per second of the f64 kernel at [`LANES`] = 8
//! (f32 width 8: ~1.45×, 32: ~2.0×, but 32 lanes pad small ensembles more
//! and gained nothing at 112 members). f32 width 16 and f64 width 8 both use
//! two ymm (one zmm) register per site, so the f32 kernel does the same
//! instructions for twice the members; the generated f32 code is packed
//! `vaddps`/`vsubps`/`vmulps` on ymm registers throughout.

use std::fmt::Debug;
use std::ops::{Add, Mul, Sub};

use multiversion::multiversion;

use crate::Forcing;

/// Members integrated side by side by [`crate::Lorenz96`]'s batch evaluation
/// and by `ekp-cli bench` (8: one AVX-512 register of f64 per site).
pub const LANES: usize = 8;

/// Members integrated side by side in f32 by
/// [`crate::Lorenz96::final_states_into_f32`] (16: one AVX-512 register, or
/// two AVX2 registers, of f32 per site — the same register count per site
/// as [`LANES`] f64 lanes, so twice the members per instruction; measured
/// ~1.85× the f64 kernel's throughput on AVX2, see the module documentation).
pub const LANES_F32: usize = 16;

mod sealed {
    /// Only f32 and f64 implement [`super::LaneReal`].
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The floating-point types the lanes kernel (and the scalar reference in
/// [`crate::lorenz96`]) integrates in: `f64` and `f32`. Sealed.
pub trait LaneReal:
    sealed::Sealed
    + Copy
    + Debug
    + Default
    + PartialEq
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
{
    /// 0.
    const ZERO: Self;
    /// 2.
    const TWO: Self;
    /// `x` rounded to the nearest value of this type (`x as f32`; the
    /// identity for f64).
    fn from_f64(x: f64) -> Self;
    /// The value as an f64 (exact).
    fn to_f64(self) -> f64;
}

impl LaneReal for f64 {
    const ZERO: Self = 0.0;
    const TWO: Self = 2.0;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

impl LaneReal for f32 {
    const ZERO: Self = 0.0;
    const TWO: Self = 2.0;
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

/// The step lengths of one RK4 step in the working precision: `dt`, `dt/2`
/// and `dt/6`, each computed in f64 from the f64 `dt` and then rounded to
/// `T` (for f64 exactly the values the f64 reference computes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepLengths<T> {
    /// `dt` rounded to `T`.
    pub(crate) dt: T,
    /// `dt/2` (in f64) rounded to `T`.
    pub(crate) half: T,
    /// `dt/6` (in f64) rounded to `T`.
    pub(crate) sixth: T,
}

impl<T: LaneReal> StepLengths<T> {
    /// The step lengths of `dt`.
    #[inline(always)]
    pub(crate) fn new(dt: f64) -> Self {
        Self {
            dt: T::from_f64(dt),
            half: T::from_f64(dt / 2.0),
            sixth: T::from_f64(dt / 6.0),
        }
    }
}

/// One site of `L` members (f64 unless `T` says otherwise).
pub type Lane<const L: usize, T = f64> = [T; L];

/// The forcings of `L` members, `F_l + A_l·sin(ω t)` with a shared ω, in
/// the working precision `T` (f64 unless said otherwise; see the module
/// documentation for f32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneForcing<const L: usize, T: LaneReal = f64> {
    /// Mean forcing `F` of each lane (rounded to `T`).
    pub mean: Lane<L, T>,
    /// Amplitude `A` of each lane (rounded to `T`).
    pub amplitude: Lane<L, T>,
    /// Angular frequency ω, shared by all lanes (always f64).
    pub omega: f64,
}

/// The forcings of `L` members in f32: `LaneForcing<L, f32>`.
pub type LaneForcing32<const L: usize> = LaneForcing<L, f32>;

impl<const L: usize, T: LaneReal> LaneForcing<L, T> {
    /// Gather the forcings of up to `L` members (`F` and `A` rounded to
    /// `T`); lanes past `forcings.len()` repeat the last forcing (or get
    /// `F = 8, A = 0` if there is none), so padding lanes compute an
    /// ordinary, harmless trajectory.
    ///
    /// Returns `None` if the members do not share one ω.
    pub fn gather(forcings: &[Forcing]) -> Option<Self> {
        let pad = forcings.last().copied().unwrap_or(Forcing::constant(8.0));
        let omega = pad.omega;
        if forcings
            .iter()
            .any(|f| f.omega.to_bits() != omega.to_bits())
        {
            return None;
        }
        let at = |l: usize| forcings.get(l).copied().unwrap_or(pad);
        Some(Self {
            mean: std::array::from_fn(|l| T::from_f64(at(l).mean)),
            amplitude: std::array::from_fn(|l| T::from_f64(at(l).amplitude)),
            omega,
        })
    }

    /// The forcing of each lane at time `t`: `sin(ω t)` in f64, rounded to
    /// `T`, then `F + A·s` in `T` — exactly [`Forcing::at`] for f64 and
    /// [`Forcing::at_f32`] for f32.
    #[inline(always)]
    pub fn at(&self, t: f64) -> Lane<L, T> {
        let s = T::from_f64(Forcing::sine(self.omega, t));
        std::array::from_fn(|l| self.mean[l] + self.amplitude[l] * s)
    }
}

/// The state of `L` Lorenz 96 members side by side, in the working
/// precision `T` (f64 unless said otherwise), with the RK4 scratch buffers:
/// allocated once, the time loop does not allocate.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneState<const L: usize, T: LaneReal = f64> {
    x: Vec<Lane<L, T>>,
    a: Vec<Lane<L, T>>,
    b: Vec<Lane<L, T>>,
    acc: Vec<Lane<L, T>>,
}

/// The state of `L` members in f32: `LaneState<L, f32>`.
pub type LaneState32<const L: usize> = LaneState<L, f32>;

impl<const L: usize, T: LaneReal> LaneState<L, T> {
    /// A zero state of `sites` sites.
    pub fn new(sites: usize) -> Self {
        let zero = vec![[T::ZERO; L]; sites];
        Self {
            x: zero.clone(),
            a: zero.clone(),
            b: zero.clone(),
            acc: zero,
        }
    }

    /// Every lane set to the same state `x0` (its length must be the number
    /// of sites; extra values are ignored, missing ones left unchanged).
    pub fn fill(&mut self, x0: &[T]) {
        for (site, &v) in self.x.iter_mut().zip(x0) {
            *site = [v; L];
        }
    }

    /// [`Self::fill`] from an f64 state, each value rounded to `T` (for
    /// f64 the same as [`Self::fill`]).
    pub fn fill_from_f64(&mut self, x0: &[f64]) {
        for (site, &v) in self.x.iter_mut().zip(x0) {
            *site = [T::from_f64(v); L];
        }
    }

    /// Number of sites.
    pub fn sites(&self) -> usize {
        self.x.len()
    }

    /// The state, site by site (`state()[i][l]` is site `i` of lane `l`).
    pub fn state(&self) -> &[Lane<L, T>] {
        &self.x
    }

    /// Copy lane `lane`'s state into `out` (up to `min(sites, out.len())`
    /// values; nothing if `lane ≥ L`).
    pub fn copy_lane(&self, lane: usize, out: &mut [T]) {
        if lane < L {
            for (o, site) in out.iter_mut().zip(&self.x) {
                *o = site[lane];
            }
        }
    }

    /// Advance every lane by `n_steps` RK4 steps, from t = `from_step`·dt:
    /// step `j` is forced with `forcing.at(j·dt)` (t in f64), exactly as
    /// [`crate::lorenz96::integrate`] (f64) or
    /// [`crate::lorenz96::integrate_f32`] (f32) does for one member. The
    /// step lengths are `dt`, `dt/2`, `dt/6` computed in f64 and rounded
    /// to `T`.
    pub fn integrate(
        &mut self,
        forcing: &LaneForcing<L, T>,
        dt: f64,
        from_step: usize,
        n_steps: usize,
    ) {
        let Self { x, a, b, acc } = self;
        integrate_dispatch(x, a, b, acc, forcing, dt, from_step, n_steps);
    }
}

/// The runtime-dispatched time loop (see the module documentation).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
#[allow(clippy::too_many_arguments)]
fn integrate_dispatch<T: LaneReal, const L: usize>(
    x: &mut [Lane<L, T>],
    a: &mut [Lane<L, T>],
    b: &mut [Lane<L, T>],
    acc: &mut [Lane<L, T>],
    forcing: &LaneForcing<L, T>,
    dt: f64,
    from_step: usize,
    n_steps: usize,
) {
    let h = StepLengths::<T>::new(dt);
    for j in from_step + 1..=from_step + n_steps {
        let f = forcing.at(dt * j as f64);
        step(x, a, b, acc, &f, h);
    }
}

/// `[expr for l in 0..L]` as a plain loop over the lanes (no closure, so
/// nothing can stay out of line).
macro_rules! lanewise {
    (|$l:ident| $e:expr) => {{
        let mut r: Lane<L, T> = [T::ZERO; L];
        #[allow(clippy::needless_range_loop)]
        for $l in 0..L {
            r[$l] = $e;
        }
        r
    }};
}

/// The Lorenz 96 tendency at one site for `L` lanes:
/// `(x[i+1] − x[i−2])·x[i−1] − x[i] + F`.
#[inline(always)]
fn tend<T: LaneReal, const L: usize>(
    xm2: &Lane<L, T>,
    xm1: &Lane<L, T>,
    x0: &Lane<L, T>,
    xp1: &Lane<L, T>,
    f: &Lane<L, T>,
) -> Lane<L, T> {
    lanewise!(|l| (xp1[l] - xm2[l]) * xm1[l] - x0[l] + f[l])
}

/// `x + k·h` lane by lane.
#[inline(always)]
fn add_scaled<T: LaneReal, const L: usize>(x: &Lane<L, T>, k: &Lane<L, T>, h: T) -> Lane<L, T> {
    lanewise!(|l| x[l] + k[l] * h)
}

/// For every site `i` in order 0, 1, …, n−1, bind `$i` and `$k` (the
/// tendency of `$src` at site `i`, periodic indices) and run `$body`.
///
/// A macro rather than a function taking a closure: closures are not
/// reliably inlined into the `#[target_feature]` clones, and a call per site
/// to a baseline-compiled closure costs more than the site's arithmetic.
///
/// The interior loop keeps a sliding window of four sites in registers (one
/// load per site). It also carries an ordered floating-point sum of one lane
/// (`keep_scalar`, passed to `black_box`): LLVM cannot reorder such a sum, so
/// it leaves the loop over sites scalar and vectorises each site's `[T; L]`
/// operations instead. Without it, LLVM vectorises *across sites* with
/// gathers/scatters, which made the kernel slower than the per-member loop.
macro_rules! sweep {
    ($src:expr, $f:expr, |$i:ident, $k:ident| $body:block) => {{
        let src = $src;
        let f = $f;
        let n = src.len();
        if n < 4 {
            // Tiny rings: the reference's mod-n formula.
            for $i in 0..n {
                let at = |k: usize| &src[($i + n * 2 + k - 2) % n];
                let $k = tend(at(0), at(1), at(2), at(3), f);
                $body
            }
        } else {
            {
                let $i = 0;
                let $k = tend(&src[n - 2], &src[n - 1], &src[0], &src[1], f);
                $body
            }
            {
                let $i = 1;
                let $k = tend(&src[n - 1], &src[0], &src[1], &src[2], f);
                $body
            }
            let (mut w0, mut w1, mut w2) = (src[0], src[1], src[2]);
            let mut keep_scalar = T::ZERO;
            for (j, w3) in src[3..].iter().enumerate() {
                let $i = j + 2;
                let $k = tend(&w0, &w1, &w2, w3, f);
                $body
                keep_scalar = keep_scalar + w3[0];
                w0 = w1;
                w1 = w2;
                w2 = *w3;
            }
            std::hint::black_box(keep_scalar);
            {
                let $i = n - 1;
                let $k = tend(&src[n - 3], &src[n - 2], &src[n - 1], &src[0], f);
                $body
            }
        }
    }};
}

/// One RK4 step of every lane, with the stages fused into the tendency
/// sweeps: `a`, `b` hold the stage states, `acc` the running sum
/// `k1 + 2k2 + 2k3`, accumulated in the reference's order.
#[inline(always)]
fn step<T: LaneReal, const L: usize>(
    x: &mut [Lane<L, T>],
    a: &mut [Lane<L, T>],
    b: &mut [Lane<L, T>],
    acc: &mut [Lane<L, T>],
    f: &Lane<L, T>,
    h: StepLengths<T>,
) {
    let n = x.len();
    if a.len() != n || b.len() != n || acc.len() != n {
        return;
    }
    let StepLengths { dt, half, sixth } = h;
    // k1 = f(x): a = x + k1·dt/2, acc = k1.
    sweep!(&*x, f, |i, k| {
        a[i] = add_scaled(&x[i], &k, half);
        acc[i] = k;
    });
    // k2 = f(a): b = x + k2·dt/2, acc = k1 + 2k2.
    sweep!(&*a, f, |i, k| {
        b[i] = add_scaled(&x[i], &k, half);
        acc[i] = lanewise!(|l| acc[i][l] + T::TWO * k[l]);
    });
    // k3 = f(b): a = x + k3·dt, acc = k1 + 2k2 + 2k3.
    sweep!(&*b, f, |i, k| {
        a[i] = add_scaled(&x[i], &k, dt);
        acc[i] = lanewise!(|l| acc[i][l] + T::TWO * k[l]);
    });
    // k4 = f(a): x += dt/6 · (k1 + 2k2 + 2k3 + k4).
    sweep!(&*a, f, |i, k| {
        x[i] = lanewise!(|l| x[i][l] + sixth * (acc[i][l] + k[l]));
    });
}
