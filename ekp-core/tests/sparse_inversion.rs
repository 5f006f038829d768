//! Sparse EKI: the ℓ1 projection against closed forms, the whole process
//! against plain EKI, and its settings.
//!
//! Closed forms of the projection `argmin ½ (u − a)ᵀ C⁻¹ (u − a)` subject to
//! `Σ_{i∈S} |u_i| ≤ γ`:
//! - `C` diagonal: `u_i = sign(a_i) max(|a_i| − λ c_i, 0)` on `S` (soft
//!   thresholding; the same level `λ` for every component when `C = c I`),
//!   with `λ ≥ 0` the root of `Σ_{i∈S} max(|a_i| − λ c_i, 0) = γ`, and
//!   `u_i = a_i` off `S`;
//! - `γ = 0`: `u = a − C[:, S] C[S, S]⁻¹ a_S`.
//!
//! And against a second implementation: EKP.jl's `sparse_qp` over the joint
//! `[u; g]`, written out and solved in the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::process::sparse_inversion::l1_projection;
use ekp_core::{
    Accelerator, EkpError, EnsembleKalmanProcess, Inversion, Localizer, NoiseCovariance,
    Observation, ParameterPrior, Prior, Process, Scheduler, SparseInversion, UpdateGroup,
};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The diagonal closed form (see the module doc), `λ` by bisection.
fn weighted_soft_threshold(a: &DVector<f64>, c: &[f64], s: &[usize], gamma: f64) -> DVector<f64> {
    let shrink = |lambda: f64, i: usize| a[i].signum() * (a[i].abs() - lambda * c[i]).max(0.0);
    let l1 = |lambda: f64| s.iter().map(|&i| shrink(lambda, i).abs()).sum::<f64>();
    let mut out = a.clone();
    if l1(0.0) <= gamma {
        return out;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while l1(hi) > gamma {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if l1(mid) > gamma {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    for &i in s {
        out[i] = shrink(0.5 * (lo + hi), i);
    }
    out
}

fn random_vector(rng: &mut ChaCha20Rng, p: usize, scale: f64) -> DVector<f64> {
    DVector::from_fn(p, |_, _| scale * (2.0 * rng.random::<f64>() - 1.0))
}

#[test]
fn projection_with_identity_metric_is_soft_thresholding() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for trial in 0..20 {
        let p = 2 + trial % 7;
        let a = random_vector(&mut rng, p, 3.0);
        let c = 0.5 + rng.random::<f64>() * 2.0;
        let all: Vec<usize> = (0..p).collect();
        let gamma = a.lp_norm(1) * rng.random::<f64>();
        let u = l1_projection(&a, &(DMatrix::identity(p, p) * c), &all, gamma).unwrap();
        let expected = weighted_soft_threshold(&a, &vec![c; p], &all, gamma);
        assert!(
            (&u - &expected).amax() < 1e-6,
            "trial {trial}: {u} vs {expected}"
        );
        assert!(u.lp_norm(1) <= gamma + 1e-7);
    }
}

#[test]
fn projection_with_diagonal_metric_on_a_subset_matches_the_closed_form() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    for trial in 0..20 {
        let p = 6;
        let a = random_vector(&mut rng, p, 3.0);
        let c: Vec<f64> = (0..p).map(|_| 0.1 + 3.0 * rng.random::<f64>()).collect();
        let s = [0, 2, 3, 5];
        let l1_s: f64 = s.iter().map(|&i| a[i].abs()).sum();
        let gamma = l1_s * rng.random::<f64>();
        let cov = DMatrix::from_diagonal(&DVector::from_column_slice(&c));
        let u = l1_projection(&a, &cov, &s, gamma).unwrap();
        let expected = weighted_soft_threshold(&a, &c, &s, gamma);
        assert!(
            (&u - &expected).amax() < 1e-6,
            "trial {trial}: {u} vs {expected}"
        );
        // The parameters outside S are untouched.
        for i in [1, 4] {
            assert!((u[i] - a[i]).abs() < 1e-7, "trial {trial}: component {i}");
        }
    }
}

#[test]
fn small_gamma_agrees_with_the_gamma_zero_closed_form() {
    // A full covariance: the solver with γ = 1e-9 against the exact γ = 0
    // answer, which sets the chosen parameters to zero and moves the
    // correlated others.
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let p = 5;
    let m = DMatrix::from_fn(p, p, |_, _| rng.random::<f64>() - 0.5);
    let cov = &m * m.transpose() + DMatrix::identity(p, p) * 0.2;
    let a = random_vector(&mut rng, p, 2.0);
    let s = [1, 3];
    let exact = l1_projection(&a, &cov, &s, 0.0).unwrap();
    assert_eq!(exact[1], 0.0);
    assert_eq!(exact[3], 0.0);
    let c_ss = DMatrix::from_fn(2, 2, |r, q| cov[(s[r], s[q])]);
    let c_s = DMatrix::from_fn(p, 2, |r, q| cov[(r, s[q])]);
    let a_s = DVector::from_column_slice(&[a[1], a[3]]);
    let closed = &a - c_s * c_ss.try_inverse().unwrap() * a_s;
    assert!((&exact - &closed).amax() < 1e-12);
    let solved = l1_projection(&a, &cov, &s, 1e-9).unwrap();
    assert!((&solved - &closed).amax() < 1e-6, "{solved} vs {closed}");
    // The correlated parameters outside S did move.
    assert!((closed[0] - a[0]).abs() > 1e-3);
}

#[test]
fn a_feasible_point_is_its_own_projection() {
    let a = DVector::from_column_slice(&[0.5, -0.25, 3.0]);
    let cov = DMatrix::from_row_slice(3, 3, &[2.0, 0.3, 0.1, 0.3, 1.0, 0.2, 0.1, 0.2, 1.5]);
    let u = l1_projection(&a, &cov, &[0, 1], 0.75).unwrap();
    assert_eq!(u, a);
}

#[test]
fn bad_projection_inputs_are_errors() {
    let a = DVector::from_column_slice(&[1.0, 2.0]);
    let err = l1_projection(&a, &DMatrix::identity(3, 3), &[0], 0.5).unwrap_err();
    assert!(matches!(
        err,
        EkpError::SparseProjection { member: None, .. }
    ));
    let err = l1_projection(&a, &DMatrix::identity(2, 2), &[2], 0.5).unwrap_err();
    assert!(err.to_string().contains("index 2"), "{err}");
    let not_pd = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
    let err = l1_projection(&a, &not_pd, &[0, 1], 0.5).unwrap_err();
    assert!(err.to_string().contains("positive definite"), "{err}");
}

// ------------------------------------------------------------ the process

/// An underdetermined linear problem with a 2-sparse truth: `p = 10`
/// parameters, `d = 6` data, small noise.
struct SparseProblem {
    g: DMatrix<f64>,
    truth: DVector<f64>,
    y: DVector<f64>,
    noise_sd: f64,
}

impl SparseProblem {
    fn new() -> Self {
        let (p, d) = (10, 6);
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let g = DMatrix::from_fn(d, p, |_, _| {
            (2.0 * rng.random::<f64>() - 1.0) * (3.0 / d as f64).sqrt()
        });
        let mut truth = DVector::zeros(p);
        truth[1] = 2.0;
        truth[6] = -1.5;
        let noise_sd = 0.01;
        let eta = random_vector(&mut rng, d, noise_sd);
        let y = &g * &truth + eta;
        Self {
            g,
            truth,
            y,
            noise_sd,
        }
    }

    fn prior(&self) -> Prior {
        Prior::new(vec![
            ParameterPrior::gaussian("u", 0.0, 1.0, self.truth.len()).unwrap(),
        ])
        .unwrap()
    }

    fn observation(&self) -> Observation {
        let noise = NoiseCovariance::scalar_std(self.noise_sd, self.y.len()).unwrap();
        Observation::new(self.y.clone(), noise).unwrap()
    }

    fn run(&self, process: Process, iterations: usize) -> EnsembleKalmanProcess {
        let mut ekp = EnsembleKalmanProcess::builder(self.prior(), self.observation(), process)
            .ensemble_size(40)
            .seed(7)
            .scheduler(Scheduler::Fixed { dt: 1.0 })
            .localizer(Localizer::None)
            .accelerator(Accelerator::None)
            .build()
            .unwrap();
        for _ in 0..iterations {
            let g = &self.g * ekp.ensemble();
            ekp.update(&g).unwrap();
        }
        ekp
    }
}

#[test]
fn sparse_eki_recovers_a_sparse_truth_where_eki_does_not() {
    let sp = SparseProblem::new();
    let zeros: Vec<usize> = (0..10).filter(|&i| sp.truth[i] == 0.0).collect();
    let mut settings = SparseInversion::new(sp.truth.lp_norm(1));
    settings.threshold = 0.05;
    let sparse = sp.run(Process::SparseInversion(settings), 10);
    let plain = sp.run(Process::Inversion(Inversion::default()), 10);
    let m_sparse = sparse.unconstrained_mean();
    let m_plain = plain.unconstrained_mean();
    eprintln!("truth  {}", sp.truth.transpose());
    eprintln!("sparse {}", m_sparse.transpose());
    eprintln!("plain  {}", m_plain.transpose());
    let off = |m: &DVector<f64>| zeros.iter().map(|&i| m[i].abs()).fold(0.0, f64::max);
    // Sparse EKI: the zero components within the threshold, the others close.
    assert!(off(&m_sparse) < 0.05, "{}", off(&m_sparse));
    assert!((&m_sparse - &sp.truth).amax() < 0.1);
    // Plain EKI (same seed, same initial ensemble) fits the data with a
    // dense vector.
    assert!(off(&m_plain) > 0.2, "{}", off(&m_plain));
    assert_eq!(sparse.u_history()[0], plain.u_history()[0]);
}

#[test]
fn with_an_inactive_constraint_sparse_eki_is_eki() {
    // γ far above any member's ℓ1 norm: the projection keeps the EKI update
    // and no extra draws are made, so the trajectories agree — to round-off:
    // EKI itself takes the low-rank (Woodbury) form for this diagonal Γ,
    // sparse EKI the dense form it also needs for the projection's metric.
    let sp = SparseProblem::new();
    let sparse = sp.run(Process::SparseInversion(SparseInversion::new(1e6)), 4);
    let plain = sp.run(Process::Inversion(Inversion::default()), 4);
    let diff = (sparse.ensemble() - plain.ensemble()).amax();
    assert!(diff <= 1e-10 * plain.ensemble().amax(), "{diff}");
}

#[test]
fn gamma_zero_sets_the_chosen_parameters_to_zero_and_only_them() {
    let sp = SparseProblem::new();
    let chosen = vec![0, 1, 2];
    let mut settings = SparseInversion::new(0.0);
    settings.sparse_indices = Some(chosen.clone());
    let ekp = sp.run(Process::SparseInversion(settings.clone()), 1);
    let u = ekp.ensemble();
    for j in 0..u.ncols() {
        for &i in &chosen {
            assert_eq!(u[(i, j)], 0.0);
        }
        assert!((3..10).all(|i| u[(i, j)] != 0.0));
    }
    // A small positive γ goes through the solver: the ℓ1 norm of the chosen
    // parameters of every member is at most γ.
    settings.gamma = 1e-3;
    let ekp = sp.run(Process::SparseInversion(settings), 1);
    let u = ekp.ensemble();
    for j in 0..u.ncols() {
        let l1: f64 = chosen.iter().map(|&i| u[(i, j)].abs()).sum();
        assert!(l1 <= 1e-3 + 1e-7, "member {j}: {l1}");
    }
}

#[test]
fn threshold_and_reg_act_on_the_chosen_parameters_only() {
    // The constraint inactive (γ large): the projection is the EKI update,
    // so any difference from EKI comes from the pruning and the noise.
    let sp = SparseProblem::new();
    let plain = sp.run(Process::Inversion(Inversion::default()), 1);
    let u_eki = plain.ensemble();
    let chosen = vec![2, 5, 7];
    let mut settings = SparseInversion::new(1e6);
    settings.sparse_indices = Some(chosen.clone());
    settings.threshold = 0.3;
    let pruned = sp.run(Process::SparseInversion(settings.clone()), 1);
    let u = pruned.ensemble();
    let mut pruned_any = false;
    for j in 0..u.ncols() {
        for i in 0..10 {
            if chosen.contains(&i) && u_eki[(i, j)].abs() <= 0.3 {
                assert_eq!(u[(i, j)], 0.0);
                pruned_any = true;
            } else {
                // Round-off apart (EKI's low-rank form vs the dense one).
                assert!((u[(i, j)] - u_eki[(i, j)]).abs() <= 1e-10, "({i}, {j})");
            }
        }
    }
    assert!(pruned_any);
    settings.threshold = 0.0;
    settings.reg = 1e-4;
    let noisy = sp.run(Process::SparseInversion(settings), 1);
    let u = noisy.ensemble();
    for j in 0..u.ncols() {
        for i in 0..10 {
            if chosen.contains(&i) {
                assert_ne!(u[(i, j)], u_eki[(i, j)]);
                // N(0, 1e-4): sd 0.01; 6 sds is far beyond 120 draws.
                assert!((u[(i, j)] - u_eki[(i, j)]).abs() < 0.06);
            } else {
                assert!((u[(i, j)] - u_eki[(i, j)]).abs() <= 1e-10, "({i}, {j})");
            }
        }
    }
}

#[test]
fn the_result_does_not_depend_on_the_number_of_threads() {
    let sp = SparseProblem::new();
    let settings = SparseInversion::new(2.0);
    let run_with = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| sp.run(Process::SparseInversion(settings.clone()), 3))
    };
    let one = run_with(1);
    let four = run_with(4);
    assert_eq!(one.ensemble(), four.ensemble());
}

#[test]
fn defaults_are_ekpjl_s() {
    let sp = SparseProblem::new();
    let process = Process::SparseInversion(SparseInversion::new(1.0));
    assert_eq!(process.kind(), "sparse-inversion");
    let ekp = EnsembleKalmanProcess::builder(sp.prior(), sp.observation(), process)
        .build()
        .unwrap();
    assert_eq!(ekp.scheduler(), &Scheduler::Fixed { dt: 1.0 });
    assert_eq!(ekp.localizer(), &Localizer::sec_nice());
    assert!(ekp.accelerator().is_none());
    assert_eq!(
        ekp.failure_policy(),
        ekp_core::FailurePolicy::SampleSuccessGauss
    );
    let s = SparseInversion::new(1.0);
    assert_eq!((s.threshold, s.reg, s.sparse_indices), (0.0, 0.0, None));
}

#[test]
fn with_its_defaults_it_runs_and_fails_members_as_eki() {
    // sec-nice localization, and a failed member redrawn.
    let sp = SparseProblem::new();
    let mut ekp = EnsembleKalmanProcess::builder(
        sp.prior(),
        sp.observation(),
        Process::SparseInversion(SparseInversion::new(3.5)),
    )
    .ensemble_size(30)
    .seed(2)
    .build()
    .unwrap();
    for k in 0..3 {
        let mut g = &sp.g * ekp.ensemble();
        if k == 1 {
            g[(0, 4)] = f64::NAN;
        }
        ekp.update(&g).unwrap();
    }
    assert!(ekp.ensemble().iter().all(|v| v.is_finite()));
    assert_eq!(ekp.failed_history()[1], vec![4]);
}

#[test]
fn invalid_settings_are_clear_errors() {
    let sp = SparseProblem::new();
    let build = |s: SparseInversion| {
        EnsembleKalmanProcess::builder(sp.prior(), sp.observation(), Process::SparseInversion(s))
            .build()
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let with = |f: &dyn Fn(&mut SparseInversion)| {
        let mut s = SparseInversion::new(1.0);
        f(&mut s);
        s
    };
    for (s, needle) in [
        (SparseInversion::new(-1.0), "gamma must be ≥ 0"),
        (SparseInversion::new(f64::NAN), "gamma must be ≥ 0"),
        (with(&|s| s.threshold = -0.1), "threshold must be ≥ 0"),
        (with(&|s| s.reg = f64::INFINITY), "reg must be ≥ 0"),
        (with(&|s| s.sparse_indices = Some(vec![3, 10])), "index 10"),
        (
            with(&|s| s.sparse_indices = Some(vec![3, 3])),
            "given twice",
        ),
        (with(&|s| s.sparse_indices = Some(vec![])), "empty"),
    ] {
        let err = build(s);
        assert!(err.contains(needle), "{err}");
    }
    let err = EnsembleKalmanProcess::builder(
        sp.prior(),
        sp.observation(),
        Process::SparseInversion(SparseInversion::new(1.0)),
    )
    .update_groups(vec![
        UpdateGroup::new((0..5).collect(), (0..6).collect()),
        UpdateGroup::new((5..10).collect(), (0..6).collect()),
    ])
    .build()
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(err.contains("update groups"), "{err}");
}

#[test]
fn settings_deserialize_with_ekpjl_defaults_and_reject_unknown_keys() {
    let p: Process = toml::from_str("kind = \"sparse-inversion\"\ngamma = 2.0").unwrap();
    assert_eq!(p, Process::SparseInversion(SparseInversion::new(2.0)));
    assert!(toml::from_str::<Process>("kind = \"sparse-inversion\"").is_err());
    assert!(
        toml::from_str::<Process>("kind = \"sparse-inversion\"\ngamma = 2.0\nlambda = 1").is_err()
    );
}

#[test]
fn a_small_localized_ensemble_still_projects_onto_the_ball() {
    // 6 members for 10 parameters (C^{uu} rank-deficient) with sec-nice:
    // the posterior covariance of the projection may be indefinite and is
    // repaired; every member still satisfies the constraint.
    let sp = SparseProblem::new();
    let gamma = 1.0;
    for localizer in [Localizer::None, Localizer::sec_nice()] {
        let mut ekp = EnsembleKalmanProcess::builder(
            sp.prior(),
            sp.observation(),
            Process::SparseInversion(SparseInversion::new(gamma)),
        )
        .ensemble_size(6)
        .seed(9)
        .localizer(localizer.clone())
        .build()
        .unwrap();
        for _ in 0..3 {
            let g = &sp.g * ekp.ensemble();
            ekp.update(&g).unwrap();
            for col in ekp.ensemble().column_iter() {
                assert!(
                    col.lp_norm(1) <= gamma + 1e-6,
                    "{localizer:?}: {}",
                    col.lp_norm(1)
                );
            }
        }
    }
}

/// EKP.jl's `sparse_qp` as written there: the QP over the joint `x = [u; g]`,
/// `min ½ xᵀ P x + qᵀ x`, `P = H_gᵀ Γ⁻¹ H_g + C^{vv}⁻¹`,
/// `q = −(C^{vv}⁻¹ v_j + H_gᵀ Γ⁻¹ y_j)`, `Σ_{i∈S} |u_i| ≤ γ`, solved here by
/// clarabel directly; returns `u`.
fn ekpjl_joint_qp(
    c_vv: &DMatrix<f64>,
    gamma_diag: &DVector<f64>,
    v: &DVector<f64>,
    y: &DVector<f64>,
    p: usize,
    s: &[usize],
    radius: f64,
) -> DVector<f64> {
    use clarabel::algebra::CscMatrix;
    use clarabel::solver::{
        DefaultSettings, DefaultSolver, IPSolver, NonnegativeConeT, SolverStatus,
    };
    let m = c_vv.nrows();
    let d = m - p;
    let c_inv = c_vv.clone().try_inverse().unwrap();
    let mut big_p = c_inv.clone();
    for i in 0..d {
        big_p[(p + i, p + i)] += 1.0 / gamma_diag[i];
    }
    let mut q = -(&c_inv * v);
    for i in 0..d {
        q[p + i] -= y[i] / gamma_diag[i];
    }
    let k = s.len();
    let nvar = m + k;
    // Upper triangle of P, column by column.
    let (mut colptr, mut rowval, mut nzval) = (vec![0], vec![], vec![]);
    for c in 0..nvar {
        if c < m {
            for r in 0..=c {
                rowval.push(r);
                nzval.push(0.5 * (big_p[(r, c)] + big_p[(c, r)]));
            }
        }
        colptr.push(rowval.len());
    }
    let p_csc = CscMatrix::new(nvar, nvar, colptr, rowval, nzval);
    let mut a = DMatrix::<f64>::zeros(2 * k + 1, nvar);
    for (r, &i) in s.iter().enumerate() {
        a[(r, i)] = 1.0;
        a[(r, m + r)] = -1.0;
        a[(k + r, i)] = -1.0;
        a[(k + r, m + r)] = -1.0;
        a[(2 * k, m + r)] = 1.0;
    }
    let rows: Vec<Vec<f64>> = a.row_iter().map(|r| r.iter().copied().collect()).collect();
    let a_csc = CscMatrix::from(&rows);
    let mut b = vec![0.0; 2 * k + 1];
    b[2 * k] = radius;
    let mut q_full = q.as_slice().to_vec();
    q_full.resize(nvar, 0.0);
    let settings = DefaultSettings {
        verbose: false,
        ..DefaultSettings::default()
    };
    let mut solver = DefaultSolver::new(
        &p_csc,
        &q_full,
        &a_csc,
        &b,
        &[NonnegativeConeT(2 * k + 1)],
        settings,
    )
    .unwrap();
    solver.solve();
    assert_eq!(solver.solution.status, SolverStatus::Solved);
    DVector::from_column_slice(&solver.solution.x[..p])
}

#[test]
fn the_reduced_projection_agrees_with_ekpjl_s_joint_qp() {
    // A nonlinear model and more members than p + d, so that the joint
    // covariance is well conditioned; Δt = 1, where EKP.jl's QP and ours
    // are the same problem.
    let (p, d, n) = (4, 3, 40);
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let u = DMatrix::from_fn(p, n, |_, _| 2.0 * rng.random::<f64>() - 1.0);
    let gm = DMatrix::from_fn(d, p, |_, _| 2.0 * rng.random::<f64>() - 1.0);
    let g = (&gm * &u).map(|x| x + 0.3 * x.sin() * x);
    let gamma_diag = DVector::from_fn(d, |_, _| 0.05 + 0.1 * rng.random::<f64>());
    let y = DMatrix::from_fn(d, n, |_, _| 2.0 * rng.random::<f64>() - 1.0);
    let mut v = DMatrix::zeros(p + d, n);
    v.rows_mut(0, p).copy_from(&u);
    v.rows_mut(p, d).copy_from(&g);
    let mean = v.column_mean();
    let mut va = v.clone();
    for mut c in va.column_iter_mut() {
        c -= &mean;
    }
    let mut c_vv = (&va * va.transpose()) / n as f64;
    for i in 0..p + d {
        c_vv[(i, i)] += f64::EPSILON.sqrt();
    }
    let c_uu = c_vv.view((0, 0), (p, p)).into_owned();
    let c_ug = c_vv.view((0, p), (p, d)).into_owned();
    let mut s_gg = c_vv.view((p, p), (d, d)).into_owned();
    for i in 0..d {
        s_gg[(i, i)] += gamma_diag[i];
    }
    let s_inv = s_gg.try_inverse().unwrap();
    let c_post = &c_uu - &c_ug * &s_inv * c_ug.transpose();
    let s = [0, 2, 3];
    for j in 0..5 {
        let a = u.column(j) + &c_ug * &s_inv * (y.column(j) - g.column(j));
        let l1: f64 = s.iter().map(|&i| a[i].abs()).sum();
        let radius = 0.4 * l1;
        let ours = l1_projection(&a, &c_post, &s, radius).unwrap();
        let theirs = ekpjl_joint_qp(
            &c_vv,
            &gamma_diag,
            &v.column(j).into_owned(),
            &y.column(j).into_owned(),
            p,
            &s,
            radius,
        );
        assert!(
            (&ours - &theirs).amax() < 1e-5,
            "member {j}: {ours} vs {theirs}"
        );
        // The unconstrained minimiser of EKP.jl's QP is the EKI update.
        let free = ekpjl_joint_qp(
            &c_vv,
            &gamma_diag,
            &v.column(j).into_owned(),
            &y.column(j).into_owned(),
            p,
            &s,
            1e6,
        );
        assert!((&free - &a).amax() < 1e-5, "member {j}: {free} vs {a}");
    }
}
