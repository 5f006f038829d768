//! Generation of the WGSL compute kernel for one configuration.
//!
//! The kernel is written out for the configured number of sites: every site of
//! every RK4 stage is its own line with the periodic neighbours resolved here,
//! so the only loop in the shader is the loop over the (at most
//! [`MAX_STEPS_PER_DISPATCH`](crate::MAX_STEPS_PER_DISPATCH)) time steps of one
//! dispatch. See the crate documentation for why.

use std::fmt::Write as _;

use crate::Precision;

/// Invocations per workgroup (one invocation per ensemble member).
pub(crate) const WORKGROUP_SIZE: u32 = 64;

/// Every how many steps the CPU reference checks a state before the observed
/// window (`FINITE_CHECK_INTERVAL` in `ekp_models::lorenz96`); the kernel checks
/// at the same steps so that a run fails on the GPU exactly when it fails there.
pub(crate) const CHECK_INTERVAL: usize = 256;

/// What the observing kernel needs to know about the observed window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Observation {
    /// First observed step (1-based step index `j`, t_j = j·dt).
    pub first: u32,
    /// Steps per variance sub-window.
    pub steps_per_sub_window: u32,
    /// Sub-windows averaged into one observable.
    pub fit_windows: u32,
    /// Number of observables `d`.
    pub observables: u32,
    /// Last observed step: the last step of the integration.
    pub last: u32,
    /// A state value `v` is valid while `|v| <= limit` (NaN never is).
    pub limit: f64,
}

/// Which of the three kernels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kernel {
    /// RK4 only: the benchmark and [`final_states`](crate::Lorenz96Gpu::final_states).
    Integrate,
    /// RK4 before the observed window, with the CPU's divergence check every
    /// 256th step and at the step before the window, made at the end of a
    /// dispatch. Every step `j` of a dispatch has `j < first`.
    Spinup(Observation),
    /// RK4 inside the observed window, with the statistics and the check of
    /// every state. Every step `j` of a dispatch has `first ≤ j ≤ last`.
    Observe(Observation),
}

/// Everything the generated kernel bakes in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KernelSpec {
    /// Working precision.
    pub precision: Precision,
    /// The time step.
    pub dt: f64,
    /// The initial state (one value per site).
    pub x0: Vec<f64>,
    /// Values in the forcing window (a multiple of 4): the sines of the
    /// steps `j0..j0 + window` of one dispatch, in a uniform buffer.
    pub window: usize,
    /// Which kernel.
    pub kernel: Kernel,
}

/// Rows of the per-member accumulator buffer besides the `d` observable sums
/// and the `n` sites of the sub-window's starting state: the sub-window's
/// running sum, its mean, its running sum of squared deviations, and the
/// failure flag.
pub(crate) const ACC_STAT_ROWS: usize = 4;

/// Rows of the per-member accumulator buffer for `d` observables and `n`
/// sites: `0..d` the observable sums, then `d` the sub-window's running sum,
/// `d + 1` its mean, `d + 2` its running sum of squared deviations, `d + 3`
/// the failure flag, and `d + 4..d + 4 + n` the state at the start of the
/// sub-window (replayed for the second pass, see [`KernelSpec::observe_step`]).
pub(crate) fn acc_rows(d: usize, n: usize) -> usize {
    d + ACC_STAT_ROWS + n
}

impl Observation {
    /// The observed steps `last − first + 1` (sub-windows × steps per
    /// sub-window).
    pub fn window_steps(&self) -> u32 {
        self.last + 1 - self.first
    }

    /// The steps the observing kernel runs: every sub-window twice (a first
    /// pass for the mean, a replay for the squared deviations).
    pub fn virtual_steps(&self) -> u32 {
        2 * self.window_steps()
    }
}

impl KernelSpec {
    fn ty(&self) -> &'static str {
        match self.precision {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    /// Forcing values per 16-byte slot of the uniform window.
    fn per_slot(&self) -> usize {
        16 / self.precision.bytes()
    }

    /// A floating-point literal of the working type with the value of `v`
    /// rounded to that type (exact: Rust's `Debug` output round-trips and naga
    /// parses it with Rust's correctly rounded parser).
    fn lit(&self, v: f64) -> String {
        match self.precision {
            Precision::F32 => format!("{:?}f", v as f32),
            Precision::F64 => format!("{v:?}lf"),
        }
    }

    /// The largest finite value of the working type.
    fn max_finite(&self) -> f64 {
        match self.precision {
            Precision::F32 => f64::from(f32::MAX),
            Precision::F64 => f64::MAX,
        }
    }

    fn observation(&self) -> Option<&Observation> {
        match &self.kernel {
            Kernel::Integrate => None,
            Kernel::Spinup(o) | Kernel::Observe(o) => Some(o),
        }
    }

    /// The observables `d` of the observing kernel (0 for the others).
    fn observables(&self) -> usize {
        match &self.kernel {
            Kernel::Observe(o) => o.observables as usize,
            Kernel::Integrate | Kernel::Spinup(_) => 0,
        }
    }

    /// The accumulator row of the failure flag (shared by the spin-up and
    /// the observing kernels).
    fn flag_row(&self) -> usize {
        self.observation()
            .map_or(0, |o| o.observables as usize + ACC_STAT_ROWS - 1)
    }

    /// `(|x0| <= L) & (|x1| <= L) & …`: false for NaN, ±∞ and values beyond L.
    fn valid(&self, obs: &Observation) -> String {
        let limit = self.lit(obs.limit.min(self.max_finite()));
        (0..self.x0.len())
            .map(|i| format!("(abs(x{i}) <= {limit})"))
            .collect::<Vec<_>>()
            .join(" & ")
    }

    /// The WGSL source of the kernel.
    pub fn wgsl(&self) -> String {
        let mut s = String::with_capacity(64 * 1024);
        self.declarations(&mut s);
        self.load(&mut s);
        // The time loop: at most MAX_STEPS_PER_DISPATCH iterations.
        let _ = writeln!(s, "    for (var s: u32 = 0u; s < u.steps; s = s + 1u) {{");
        match &self.kernel {
            Kernel::Integrate | Kernel::Spinup(_) => {
                let _ = writeln!(s, "        let j = u.step0 + s + 1u;");
                self.rk4(&mut s);
            }
            Kernel::Observe(obs) => self.observe_step(&mut s, obs),
        }
        let _ = writeln!(s, "    }}");
        if let Kernel::Spinup(obs) = &self.kernel {
            // The CPU's check points, once per dispatch: the host ends every
            // spin-up dispatch at a check point when the limit is finite; with
            // an infinite limit only non-finite values fail, and they stay
            // non-finite, so checking at the end of a dispatch is the same.
            let _ = writeln!(
                s,
                "    let end = u.step0 + u.steps;\n\
                 \x20   if (end % {CHECK_INTERVAL}u == 0u || end + 1u == FIRST) {{\n\
                 \x20       bad = bad | !({});\n    }}",
                self.valid(obs)
            );
        }
        self.store(&mut s);
        let _ = writeln!(s, "}}");
        s
    }

    /// The bindings, the constants and the variables of `main`.
    fn declarations(&self, s: &mut String) {
        let n = self.x0.len();
        let t = self.ty();
        let d = self.observables();
        // Writing into a String cannot fail; `let _ =` keeps clippy quiet
        // without unwrap.
        let _ = writeln!(
            s,
            "// Lorenz 96, {n} sites, RK4 with forcing held at the end-of-step time: {}.\n\
             // Generated by ekp-gpu: the sites are written out, the only loop is over\n\
             // the steps of one dispatch.\n\
             struct Dispatch {{\n    step0: u32,\n    steps: u32,\n    members: u32,\n    stride: u32,\n    j0: u32,\n    pad0: u32,\n    pad1: u32,\n    pad2: u32,\n}}\n\
             @group(0) @binding(0) var<uniform> u: Dispatch;\n\
             @group(0) @binding(1) var<storage, read> theta: array<{t}>;\n\
             // sin(ω t_j) of this dispatch's steps j0.. (uniform arrays have\n\
             // 16-byte elements: {per} values each).\n\
             @group(0) @binding(2) var<uniform> sines: array<vec{per}<{t}>, {slots}>;\n\
             @group(0) @binding(3) var<storage, read_write> state: array<{t}>;",
            self.kernel_name(),
            per = self.per_slot(),
            slots = self.window / self.per_slot(),
        );
        if let Some(obs) = self.observation() {
            let _ = writeln!(
                s,
                "@group(0) @binding(4) var<storage, read_write> acc: array<{t}>;\n\
                 const FIRST: u32 = {}u;",
                obs.first
            );
        }
        if let Kernel::Observe(obs) = &self.kernel {
            let _ = writeln!(
                s,
                "@group(0) @binding(5) var<storage, read_write> outputs: array<{t}>;\n\
                 const VEND: u32 = {}u;\nconst SPW: u32 = {}u;\nconst FIT: u32 = {}u;",
                obs.virtual_steps(),
                obs.steps_per_sub_window,
                obs.fit_windows,
            );
        }
        let _ = writeln!(
            s,
            "\n@compute @workgroup_size({WORKGROUP_SIZE})\n\
             fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{\n\
             \x20   let m = gid.x;\n\
             \x20   if (m >= u.members) {{ return; }}\n\
             \x20   let stride = u.stride;\n\
             \x20   let f_mean = theta[2u * m];\n\
             \x20   let f_amp = theta[2u * m + 1u];"
        );
        for i in 0..n {
            let _ = writeln!(s, "    var x{i}: {t};");
        }
        if self.observation().is_some() {
            let _ = writeln!(s, "    var bad: bool;");
        }
        if matches!(self.kernel, Kernel::Observe(_)) {
            let _ = writeln!(
                s,
                "    var o: array<{t}, {d}>;\n    var wsum: {t};\n    var wmean: {t};\n    var wsq: {t};"
            );
            for i in 0..n {
                let _ = writeln!(s, "    var z{i}: {t};");
            }
        }
    }

    /// Load the state, the flag and the statistics: from the initial state
    /// on the first dispatch of a member's integration, else from the
    /// buffers.
    fn load(&self, s: &mut String) {
        let n = self.x0.len();
        let d = self.observables();
        let zero = self.lit(0.0);
        // Whether this dispatch starts the integration at step 0: the
        // observing kernel does only when nothing comes before the window.
        let from_x0 = match &self.kernel {
            Kernel::Integrate | Kernel::Spinup(_) => "u.step0 == 0u",
            Kernel::Observe(obs) if obs.first == 1 => "u.step0 == 0u",
            Kernel::Observe(_) => "false",
        };
        let _ = writeln!(s, "    if ({from_x0}) {{");
        for (i, v) in self.x0.iter().enumerate() {
            let _ = writeln!(s, "        x{i} = {};", self.lit(*v));
        }
        if self.observation().is_some() {
            let _ = writeln!(s, "        bad = false;");
        }
        let _ = writeln!(s, "    }} else {{");
        for i in 0..n {
            let _ = writeln!(s, "        x{i} = state[{i}u * stride + m];");
        }
        if self.observation().is_some() {
            let _ = writeln!(
                s,
                "        bad = acc[{}u * stride + m] != {zero};",
                self.flag_row()
            );
        }
        let _ = writeln!(s, "    }}");
        if !matches!(self.kernel, Kernel::Observe(_)) {
            return;
        }
        // The window's accumulators start at its first step (the sub-window
        // state `z` is set there before it is read).
        let _ = writeln!(s, "    if (u.step0 == 0u) {{");
        for k in 0..d {
            let _ = writeln!(s, "        o[{k}] = {zero};");
        }
        let _ = writeln!(
            s,
            "        wsum = {zero};\n        wmean = {zero};\n        wsq = {zero};\n    }} else {{"
        );
        for k in 0..d {
            let _ = writeln!(s, "        o[{k}] = acc[{k}u * stride + m];");
        }
        let _ = writeln!(
            s,
            "        wsum = acc[{}u * stride + m];\n        wmean = acc[{}u * stride + m];\n        wsq = acc[{}u * stride + m];",
            d,
            d + 1,
            d + 2
        );
        for i in 0..n {
            let _ = writeln!(
                s,
                "        z{i} = acc[{}u * stride + m];",
                d + ACC_STAT_ROWS + i
            );
        }
        let _ = writeln!(s, "    }}");
    }

    /// One RK4 step of `x` with the forcing of step `j`, the operations in the
    /// CPU's order.
    fn rk4(&self, s: &mut String) {
        let n = self.x0.len();
        let idx = |i: isize| -> usize { (i.rem_euclid(n as isize)) as usize };
        let half = self.lit(self.dt / 2.0);
        let dt = self.lit(self.dt);
        let sixth = self.lit(self.dt / 6.0);
        let per = self.per_slot();
        let _ = writeln!(
            s,
            "        let fk = j - u.j0;\n        let f = f_mean + f_amp * sines[fk / {per}u][fk % {per}u];"
        );
        // Stage tendencies: k1 = a, k2 = b, k3 = c, k4 = e; stage states p, q, r.
        let tendency = |s: &mut String, k: &str, y: &str| {
            for i in 0..n {
                let ii = i as isize;
                let _ = writeln!(
                    s,
                    "        let {k}{i} = ({y}{} - {y}{}) * {y}{} - {y}{i} + f;",
                    idx(ii + 1),
                    idx(ii - 2),
                    idx(ii - 1)
                );
            }
        };
        let stage = |s: &mut String, y: &str, k: &str, h: &str| {
            for i in 0..n {
                let _ = writeln!(s, "        let {y}{i} = x{i} + {k}{i} * {h};");
            }
        };
        // The weighted sum k1 + 2 k2 + 2 k3 + k4 is accumulated as the stages
        // come (g = k1 + 2 k2, h = g + 2 k3): the CPU's left-to-right order,
        // with fewer values alive at once (registers are what limits the
        // kernel on software adapters).
        let accumulate = |s: &mut String, sum: &str, from: &str, k: &str| {
            for i in 0..n {
                let _ = writeln!(s, "        let {sum}{i} = {from}{i} + 2.0 * {k}{i};");
            }
        };
        tendency(s, "a", "x");
        stage(s, "p", "a", &half);
        tendency(s, "b", "p");
        accumulate(s, "g", "a", "b");
        stage(s, "q", "b", &half);
        tendency(s, "c", "q");
        accumulate(s, "h", "g", "c");
        stage(s, "r", "c", &dt);
        tendency(s, "e", "r");
        for i in 0..n {
            let _ = writeln!(s, "        x{i} = x{i} + {sixth} * (h{i} + e{i});");
        }
    }

    /// One step of the observing kernel: the CPU's two-pass sample variance
    /// of each sub-window, in the CPU's order of operations.
    ///
    /// The CPU (`ekp_models`' `sample_variance`) sums the sub-window's
    /// `SPW × n` values step by step, site by site, divides by their count,
    /// then sums the squared deviations from that mean in the same order and
    /// divides by the count − 1. The mean is known only at the end of the
    /// sub-window, and keeping its values would cost `SPW × n` values per
    /// member; so the kernel runs each sub-window twice from its starting
    /// state `z` (kept in registers and in the accumulator buffer): a first
    /// pass sums the values, a replay — the same arithmetic on the same
    /// inputs, hence the same states — sums the squared deviations. The
    /// dispatches count these *virtual* steps `v`: sub-window `k` is
    /// `v ∈ [2k·SPW, 2(k+1)·SPW)`, its first half the first pass.
    fn observe_step(&self, s: &mut String, obs: &Observation) {
        let n = self.x0.len();
        let chain = |first: String, term: &dyn Fn(usize) -> String| {
            std::iter::once(first)
                .chain((1..n).map(term))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let _ = writeln!(
            s,
            "        let vstep = u.step0 + s;\n\
             \x20       let sub = vstep / (2u * SPW);\n\
             \x20       let rem = vstep % (2u * SPW);\n\
             \x20       let replay = rem >= SPW;\n\
             \x20       let pos = rem % SPW;\n\
             \x20       let j = FIRST + sub * SPW + pos;\n\
             \x20       if (pos == 0u) {{\n\
             \x20           if (replay) {{"
        );
        for i in 0..n {
            let _ = writeln!(s, "                x{i} = z{i};");
        }
        let _ = writeln!(s, "            }} else {{");
        for i in 0..n {
            let _ = writeln!(s, "                z{i} = x{i};");
        }
        let _ = writeln!(s, "            }}\n        }}");
        self.rk4(s);
        // Second pass: Σ (x − mean)², from the sub-window's first value on.
        let _ = writeln!(s, "        if (replay) {{");
        for i in 0..n {
            let _ = writeln!(s, "            let dv{i} = x{i} - wmean;");
        }
        let sq = chain(
            "select(wsq + dv0 * dv0, dv0 * dv0, pos == 0u)".to_string(),
            &|i| format!("dv{i} * dv{i}"),
        );
        let _ = writeln!(
            s,
            "            wsq = {sq};\n\
             \x20           if (pos == SPW - 1u) {{\n\
             \x20               let v = wsq / {};\n\
             \x20               bad = bad | !(abs(v) <= {});\n\
             \x20               let g = sub / FIT;\n\
             \x20               o[g] = o[g] + v;\n\
             \x20           }}\n\
             \x20       }} else {{",
            self.lit((obs.steps_per_sub_window as usize * n - 1) as f64),
            self.lit(self.max_finite()),
        );
        // First pass: Σ x, from the sub-window's first value on.
        let sum = chain("select(wsum + x0, x0, pos == 0u)".to_string(), &|i| {
            format!("x{i}")
        });
        let _ = writeln!(
            s,
            "            wsum = {sum};\n\
             \x20           if (pos == SPW - 1u) {{\n\
             \x20               wmean = wsum / {};\n\
             \x20           }}",
            self.lit((obs.steps_per_sub_window as usize * n) as f64),
        );
        // Every value is checked against a finite limit. With no limit only
        // NaN and ±∞ fail, and one of them in the state makes the
        // sub-window's variance NaN: the check of `v` catches it.
        if obs.limit < self.max_finite() {
            let _ = writeln!(s, "            bad = bad | !({});", self.valid(obs));
        }
        let _ = writeln!(s, "        }}");
    }

    /// Store the state (and the flag and statistics) for the next dispatch;
    /// the observing kernel's last dispatch also writes the outputs.
    fn store(&self, s: &mut String) {
        let n = self.x0.len();
        let d = self.observables();
        let zero = self.lit(0.0);
        let one = self.lit(1.0);
        for i in 0..n {
            let _ = writeln!(s, "    state[{i}u * stride + m] = x{i};");
        }
        if self.observation().is_some() {
            let _ = writeln!(
                s,
                "    acc[{}u * stride + m] = select({zero}, {one}, bad);",
                self.flag_row()
            );
        }
        if !matches!(self.kernel, Kernel::Observe(_)) {
            return;
        }
        for k in 0..d {
            let _ = writeln!(s, "    acc[{k}u * stride + m] = o[{k}];");
        }
        let _ = writeln!(
            s,
            "    acc[{}u * stride + m] = wsum;\n    acc[{}u * stride + m] = wmean;\n    acc[{}u * stride + m] = wsq;",
            d,
            d + 1,
            d + 2,
        );
        for i in 0..n {
            let _ = writeln!(
                s,
                "    acc[{}u * stride + m] = z{i};",
                d + ACC_STAT_ROWS + i
            );
        }
        let _ = writeln!(s, "    if (u.step0 + u.steps == VEND) {{");
        for k in 0..d {
            let _ = writeln!(s, "        outputs[m * {}u + {k}u] = o[{k}];", d + 1);
        }
        let _ = writeln!(
            s,
            "        outputs[m * {}u + {d}u] = select({zero}, {one}, bad);\n    }}",
            d + 1
        );
    }

    fn kernel_name(&self) -> &'static str {
        match self.kernel {
            Kernel::Integrate => "integrate",
            Kernel::Spinup(_) => "spin-up before the observed window",
            Kernel::Observe(_) => "observed window",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Observation {
        Observation {
            first: 10,
            steps_per_sub_window: 3,
            fit_windows: 2,
            observables: 2,
            last: 21,
            limit: f64::INFINITY,
        }
    }

    fn spec(observe: bool) -> KernelSpec {
        KernelSpec {
            precision: Precision::F64,
            dt: 1.0 / 64.0,
            x0: vec![0.01, -0.02, 0.03, 0.0, 1e-7],
            window: 2048,
            kernel: if observe {
                Kernel::Observe(obs())
            } else {
                Kernel::Integrate
            },
        }
    }

    #[test]
    fn only_loop_is_over_steps() {
        let spinup = KernelSpec {
            kernel: Kernel::Spinup(obs()),
            ..spec(false)
        };
        for text in [spec(false).wgsl(), spec(true).wgsl(), spinup.wgsl()] {
            assert_eq!(text.matches("for (").count(), 1, "{text}");
            assert!(!text.contains("while "));
            assert!(!text.contains("loop {"));
        }
    }

    #[test]
    fn periodic_neighbours_are_resolved() {
        let text = spec(false).wgsl();
        // Site 0 of 5: (x1 - x3) * x4 - x0; site 4: (x0 - x2) * x3 - x4.
        assert!(text.contains("let a0 = (x1 - x3) * x4 - x0 + f;"), "{text}");
        assert!(text.contains("let a4 = (x0 - x2) * x3 - x4 + f;"), "{text}");
        assert!(text.contains("let e1 = (r2 - r4) * r0 - r1 + f;"), "{text}");
    }

    #[test]
    fn literals_round_trip() {
        let s = spec(false);
        assert_eq!(s.lit(1.0 / 64.0), "0.015625lf");
        assert_eq!(s.lit(0.1).trim_end_matches("lf").parse::<f64>(), Ok(0.1));
        let f = KernelSpec {
            precision: Precision::F32,
            ..s
        };
        assert_eq!(f.lit(0.1), "0.1f");
        assert_eq!(f.lit(f64::MAX.min(f.max_finite())), "3.4028235e38f");
    }

    #[test]
    fn observation_constants_are_baked_in() {
        let text = spec(true).wgsl();
        assert!(text.contains("const FIRST: u32 = 10u;"));
        // 12 observed steps, each sub-window run twice.
        assert!(text.contains("const VEND: u32 = 24u;"));
        assert!(text.contains("const SPW: u32 = 3u;"));
        assert!(text.contains("const FIT: u32 = 2u;"));
        // 3 steps × 5 sites: the mean divides by 15, the variance by 14.
        assert!(text.contains("wmean = wsum / 15.0lf;"), "{text}");
        assert!(text.contains("let v = wsq / 14.0lf;"), "{text}");
    }

    /// The sums run over the sites in order, left to right, continuing the
    /// running sum of the sub-window (or starting from its first value): the
    /// CPU's `Iterator::sum` over the sub-window's values.
    #[test]
    fn window_sums_are_in_the_cpus_order() {
        let text = spec(true).wgsl();
        assert!(
            text.contains("wsum = select(wsum + x0, x0, pos == 0u) + x1 + x2 + x3 + x4;"),
            "{text}"
        );
        assert!(
            text.contains(
                "wsq = select(wsq + dv0 * dv0, dv0 * dv0, pos == 0u) + dv1 * dv1 + dv2 * dv2 \
                 + dv3 * dv3 + dv4 * dv4;"
            ),
            "{text}"
        );
        assert!(text.contains("let dv3 = x3 - wmean;"), "{text}");
    }
}
