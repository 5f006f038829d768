use ekp_core::ParameterPrior;
#[test]
fn scan() {
    let p = ParameterPrior::constrained_gaussian("p", 0.2, 0.1, Some(0.0), Some(1.0), 1).unwrap();
    println!(
        "{:.15} {:.15} {:e} {:e}",
        p.unconstrained_mean(),
        p.unconstrained_std(),
        p.constrained_mean() - 0.2,
        p.constrained_std() - 0.1
    );
    for &t in &[0.5, 0.2, 0.05, 0.01, 0.001] {
        for &f in &[0.5, 0.8, 0.9, 0.95, 0.98, 0.99] {
            let s = f * (t * (1.0f64 - t)).sqrt();
            let start = std::time::Instant::now();
            match ParameterPrior::constrained_gaussian("p", t, s, Some(0.0), Some(1.0), 1) {
                Ok(p) => println!(
                    "t {t} f {f}: σu {:.3} μu {:.3} err {:e} {:e} {:?}",
                    p.unconstrained_std(),
                    p.unconstrained_mean(),
                    p.constrained_mean() / t - 1.0,
                    p.constrained_std() / s - 1.0,
                    start.elapsed()
                ),
                Err(e) => println!("t {t} f {f}: {e} {:?}", start.elapsed()),
            }
        }
    }
}
