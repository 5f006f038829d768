//! Lorenz 96 RK4 for several ensemble members side by side ("lanes").
//!
//! The state of `L` members is stored site-major, `x[site][lane]`, so every
//! arithmetic operation of the RK4 step is done on `L` members at once: the
//! compiler turns each `[f64; L]` operation into SIMD instructions. Lane
//! widths that fill whole vector registers (4 for AVX2, 8 for AVX-512) work
//! best; [`LANES`] is the width [`crate::Lorenz96`]'s batch evaluation and
//! `ekp-cli bench` use.
//!
//! **Same bits as the reference.** Each lane performs exactly the operations
//! of [`crate::lorenz96::rk4_step`], in the same order (Rust never fuses
//! `a*b + c` into an FMA on its own, with or without the `fma` target
//! feature), and the forcing `F + A·sin(ω t_j)` is computed as
//! [`crate::Forcing::at`] does. So every lane is bit-identical to the plain
//! per-member integration; the tests assert exact equality.
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

use multiversion::multiversion;

use crate::Forcing;

/// Members integrated side by side by [`crate::Lorenz96`]'s batch evaluation
/// and by `ekp-cli bench` (8: one AVX-512 register of f64 per site).
pub const LANES: usize = 8;

/// One site of `L` members.
pub type Lane<const L: usize> = [f64; L];

/// The forcings of `L` members, `F_l + A_l·sin(ω t)` with a shared ω.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneForcing<const L: usize> {
    /// Mean forcing `F` of each lane.
    pub mean: Lane<L>,
    /// Amplitude `A` of each lane.
    pub amplitude: Lane<L>,
    /// Angular frequency ω, shared by all lanes.
    pub omega: f64,
}

impl<const L: usize> LaneForcing<L> {
    /// Gather the forcings of up to `L` members; lanes past `forcings.len()`
    /// repeat the last forcing (or get `F = 8, A = 0` if there is none), so
    /// padding lanes compute an ordinary, harmless trajectory.
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
            mean: std::array::from_fn(|l| at(l).mean),
            amplitude: std::array::from_fn(|l| at(l).amplitude),
            omega,
        })
    }

    /// The forcing of each lane at time `t`: exactly [`Forcing::at`].
    #[inline(always)]
    pub fn at(&self, t: f64) -> Lane<L> {
        let s = (self.omega * t).sin();
        std::array::from_fn(|l| self.mean[l] + self.amplitude[l] * s)
    }
}

/// The state of `L` Lorenz 96 members side by side, with the RK4 scratch
/// buffers: allocated once, the time loop does not allocate.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneState<const L: usize> {
    x: Vec<Lane<L>>,
    a: Vec<Lane<L>>,
    b: Vec<Lane<L>>,
    acc: Vec<Lane<L>>,
}

impl<const L: usize> LaneState<L> {
    /// A zero state of `sites` sites.
    pub fn new(sites: usize) -> Self {
        let zero = vec![[0.0; L]; sites];
        Self {
            x: zero.clone(),
            a: zero.clone(),
            b: zero.clone(),
            acc: zero,
        }
    }

    /// Every lane set to the same state `x0` (its length must be the number
    /// of sites; extra values are ignored, missing ones left unchanged).
    pub fn fill(&mut self, x0: &[f64]) {
        for (site, &v) in self.x.iter_mut().zip(x0) {
            *site = [v; L];
        }
    }

    /// Number of sites.
    pub fn sites(&self) -> usize {
        self.x.len()
    }

    /// The state, site by site (`state()[i][l]` is site `i` of lane `l`).
    pub fn state(&self) -> &[Lane<L>] {
        &self.x
    }

    /// Copy lane `lane`'s state into `out` (up to `min(sites, out.len())`
    /// values; nothing if `lane ≥ L`).
    pub fn copy_lane(&self, lane: usize, out: &mut [f64]) {
        if lane < L {
            for (o, site) in out.iter_mut().zip(&self.x) {
                *o = site[lane];
            }
        }
    }

    /// Advance every lane by `n_steps` RK4 steps, from t = `from_step`·dt:
    /// step `j` is forced with `forcing.at(j·dt)`, exactly as
    /// [`crate::lorenz96::integrate`] does for one member.
    pub fn integrate(
        &mut self,
        forcing: &LaneForcing<L>,
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
fn integrate_dispatch<const L: usize>(
    x: &mut [Lane<L>],
    a: &mut [Lane<L>],
    b: &mut [Lane<L>],
    acc: &mut [Lane<L>],
    forcing: &LaneForcing<L>,
    dt: f64,
    from_step: usize,
    n_steps: usize,
) {
    for j in from_step + 1..=from_step + n_steps {
        let f = forcing.at(dt * j as f64);
        step(x, a, b, acc, &f, dt);
    }
}

/// `[expr for l in 0..L]` as a plain loop over the lanes (no closure, so
/// nothing can stay out of line).
macro_rules! lanewise {
    (|$l:ident| $e:expr) => {{
        let mut r: Lane<L> = [0.0; L];
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
fn tend<const L: usize>(
    xm2: &Lane<L>,
    xm1: &Lane<L>,
    x0: &Lane<L>,
    xp1: &Lane<L>,
    f: &Lane<L>,
) -> Lane<L> {
    lanewise!(|l| (xp1[l] - xm2[l]) * xm1[l] - x0[l] + f[l])
}

/// `x + k·h` lane by lane.
#[inline(always)]
fn add_scaled<const L: usize>(x: &Lane<L>, k: &Lane<L>, h: f64) -> Lane<L> {
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
/// it leaves the loop over sites scalar and vectorises each site's `[f64; L]`
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
            let mut keep_scalar = 0.0;
            for (j, w3) in src[3..].iter().enumerate() {
                let $i = j + 2;
                let $k = tend(&w0, &w1, &w2, w3, f);
                $body
                keep_scalar += w3[0];
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
fn step<const L: usize>(
    x: &mut [Lane<L>],
    a: &mut [Lane<L>],
    b: &mut [Lane<L>],
    acc: &mut [Lane<L>],
    f: &Lane<L>,
    dt: f64,
) {
    let n = x.len();
    if a.len() != n || b.len() != n || acc.len() != n {
        return;
    }
    let half = dt / 2.0;
    let sixth = dt / 6.0;
    // k1 = f(x): a = x + k1·dt/2, acc = k1.
    sweep!(&*x, f, |i, k| {
        a[i] = add_scaled(&x[i], &k, half);
        acc[i] = k;
    });
    // k2 = f(a): b = x + k2·dt/2, acc = k1 + 2k2.
    sweep!(&*a, f, |i, k| {
        b[i] = add_scaled(&x[i], &k, half);
        acc[i] = lanewise!(|l| acc[i][l] + 2.0 * k[l]);
    });
    // k3 = f(b): a = x + k3·dt, acc = k1 + 2k2 + 2k3.
    sweep!(&*b, f, |i, k| {
        a[i] = add_scaled(&x[i], &k, dt);
        acc[i] = lanewise!(|l| acc[i][l] + 2.0 * k[l]);
    });
    // k4 = f(a): x += dt/6 · (k1 + 2k2 + 2k3 + k4).
    sweep!(&*a, f, |i, k| {
        x[i] = lanewise!(|l| x[i][l] + sixth * (acc[i][l] + k[l]));
    });
}
