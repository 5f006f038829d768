//! The linear model G(θ) = Aθ + b.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::ForwardModel;
use ekp_models::{Ensemble, Execution, Linear, MemberModel, ModelsError};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

#[test]
fn outputs_are_a_theta_plus_b_exactly() {
    let a = DMatrix::from_row_slice(3, 2, &[1.0, 2.0, -3.0, 0.5, 4.0, -1.0]);
    let b = DVector::from_vec(vec![10.0, -1.0, 0.25]);
    let model = Linear::new(a, Some(b)).expect("linear");
    let params = DMatrix::from_row_slice(2, 2, &[1.0, -2.0, 3.0, 4.0]);
    let out = Ensemble::new(&model, Execution::Serial)
        .evaluate(&params)
        .expect("evaluate");
    let expected = DMatrix::from_row_slice(
        3,
        2,
        &[
            1.0 + 6.0 + 10.0,
            -2.0 + 8.0 + 10.0,
            -3.0 + 1.5 - 1.0,
            6.0 + 2.0 - 1.0,
            4.0 - 3.0 + 0.25,
            -8.0 - 4.0 + 0.25,
        ],
    );
    assert_eq!(out, expected);
    assert_eq!(model.parameter_names(), vec!["theta[1]", "theta[2]"]);
}

proptest! {
    #[test]
    fn agrees_bit_for_bit_with_nalgebra(
        d in 1usize..6,
        p in 1usize..6,
        seed in any::<u64>(),
    ) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let a = DMatrix::from_fn(d, p, |_, _| rng.random_range(-10.0..10.0));
        let b = DVector::from_fn(d, |_, _| rng.random_range(-10.0..10.0));
        let theta = DVector::from_fn(p, |_, _| rng.random_range(-10.0..10.0));
        let model = Linear::new(a.clone(), Some(b.clone())).expect("linear");
        let got = model.evaluate_single(0, theta.as_slice()).expect("evaluate");
        let expected = &a * &theta + &b;
        prop_assert_eq!(got.as_slice(), expected.as_slice());
    }
}

#[test]
fn offset_defaults_to_zero() {
    let model = Linear::from_rows(&[vec![2.0, 0.0], vec![0.0, 3.0]], None).expect("linear");
    assert_eq!(
        model.evaluate_single(0, &[1.5, -2.0]).expect("ok"),
        vec![3.0, -6.0]
    );
    assert_eq!(model.parameter_dim(), 2);
    assert_eq!(model.output_dim(), 2);
}

#[test]
fn shape_errors_name_the_field() {
    let field_of = |e: ModelsError| match e {
        ModelsError::InvalidConfig { field, model, .. } => {
            assert_eq!(model, "linear");
            field
        }
        other => panic!("unexpected {other:?}"),
    };
    let e = Linear::new(DMatrix::zeros(2, 3), Some(DVector::zeros(3))).expect_err("bad offset");
    assert!(e.to_string().contains("offset"), "{e}");
    assert_eq!(field_of(e), "offset");
    let e = Linear::new(DMatrix::zeros(0, 3), None).expect_err("empty");
    assert_eq!(field_of(e), "matrix");
    let e = Linear::from_rows(&[vec![1.0, 2.0], vec![1.0]], None).expect_err("ragged");
    assert_eq!(field_of(e), "matrix");
    let e = Linear::new(DMatrix::from_element(1, 1, f64::NAN), None).expect_err("nan");
    assert_eq!(field_of(e), "matrix");
    let names = Linear::new(DMatrix::zeros(1, 2), None)
        .expect("ok")
        .with_parameter_names(vec!["a".into()]);
    assert!(names.is_err());
}
