//! Bounds on every size and count a calibration file gives, in one place.
//!
//! No input may reach a panic or an allocation failure: a size beyond these
//! bounds is refused as bad input (`InputError::Invalid`, exit 2) naming the
//! key, before anything is allocated for it. The bounds are far above any
//! calibration these machines can run; the memory estimate
//! ([`ensemble_history_bytes`], [`MAX_ESTIMATED_BYTES`]) is what refuses a
//! calibration whose sizes are each allowed but together too large.

/// The largest `process.ensemble_size` (members `N`), and the largest
/// derived one (the sigma points of the unscented processes).
pub const MAX_ENSEMBLE_SIZE: usize = 10_000_000;

/// The largest `size` of one parameter (`[[parameters]] size`, and in EKP.jl
/// parameter files `repeats = n`, `repeat([...], n)`, `MvNormal(n, σ)`).
pub const MAX_PARAMETER_SIZE: usize = 1_000_000;

/// The largest number of parameter components `p` (the sum of the sizes).
pub const MAX_PARAMETER_DIM: usize = 10_000_000;

/// The largest `process.iterations`.
pub const MAX_ITERATIONS: usize = 1_000_000;

/// The largest number of data values `d` (and of the sum of
/// `process.minibatch.observation_sizes`): more than a calibration file of
/// at most `crate::io::MAX_READ_BYTES` (1 GiB) can list.
pub const MAX_DATA_VALUES: usize = 1_000_000_000;

/// The largest `model.sites` of the Lorenz 96 model.
pub const MAX_LORENZ96_SITES: usize = 10_000_000;

/// The largest `model.truth_samples` of the Lorenz 96 model (T-windows of
/// its truth run).
pub const MAX_LORENZ96_TRUTH_SAMPLES: usize = 1_000_000;

/// The most time samples of the sinusoid model (`2π / model.dt`).
pub const MAX_SINUSOID_SAMPLES: usize = 10_000_000;

/// The deepest nesting of brackets and calls in an EKP.jl prior or
/// constraint string (real ones nest 3 deep:
/// `VectorOfParameterized(repeat([Normal(0, 1)], 3))`).
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// The most memory a calibration may need for its ensemble history, as
/// estimated by [`ensemble_history_bytes`]: 16 GiB.
pub const MAX_ESTIMATED_BYTES: u64 = 16 << 30;

/// Bytes of bookkeeping per member and ensemble, beyond its numbers: member
/// records, folder paths, the text of its files. Measured (release build,
/// linear model, 50 000 members): about 1.2 KiB a member after one update,
/// 2 KiB after four.
pub const MEMBER_BOOKKEEPING_BYTES: u64 = 400;

/// The sizes that drive the memory of a calibration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Parameter components `p`.
    pub parameters: usize,
    /// Data values `d` (outputs per member).
    pub outputs: usize,
    /// Members `N`.
    pub members: usize,
    /// `process.iterations`.
    pub iterations: usize,
    /// Whether the outputs of every update are kept (`history = "all"`), or
    /// only the last ones.
    pub all_outputs: bool,
}

/// An estimate, in bytes, of the memory the ensemble history needs: every
/// ensemble `u` (`p × N`, `iterations + 1` of them), the outputs told
/// (`d × N`, one per ensemble with `history = "all"`, else one), and one
/// more `d × N` output matrix being filled, 8 bytes a value; plus
/// [`MEMBER_BOOKKEEPING_BYTES`] per member and ensemble. A lower bound:
/// the update's own temporaries come on top.
pub fn ensemble_history_bytes(s: &Sizes) -> u128 {
    let ensembles = s.iterations as u128 + 1;
    let outputs_kept = if s.all_outputs { ensembles } else { 1 };
    let (p, d, n) = (s.parameters as u128, s.outputs as u128, s.members as u128);
    let values = n * (p * ensembles + d * outputs_kept + d);
    8 * values + u128::from(MEMBER_BOOKKEEPING_BYTES) * n * ensembles
}

/// `bytes` for people: `21.3 GiB`, `512.0 MiB`, `12 bytes`.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut x = bytes as f64 / 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_every_ensemble_and_the_outputs() {
        let s = Sizes {
            parameters: 2,
            outputs: 4,
            members: 10,
            iterations: 5,
            all_outputs: true,
        };
        // u: 2 × 10 × 6, g: 4 × 10 × 6, one more g: 4 × 10; 60 records.
        let records = 60 * u128::from(MEMBER_BOOKKEEPING_BYTES);
        assert_eq!(ensemble_history_bytes(&s), 8 * (120 + 240 + 40) + records);
        let last = Sizes {
            all_outputs: false,
            ..s
        };
        assert_eq!(ensemble_history_bytes(&last), 8 * (120 + 40 + 40) + records);
    }

    #[test]
    fn the_estimate_cannot_overflow_within_the_bounds() {
        let s = Sizes {
            parameters: MAX_PARAMETER_DIM,
            outputs: MAX_DATA_VALUES,
            members: MAX_ENSEMBLE_SIZE,
            iterations: MAX_ITERATIONS,
            all_outputs: true,
        };
        assert!(ensemble_history_bytes(&s) > u128::from(MAX_ESTIMATED_BYTES));
    }

    #[test]
    fn a_ten_million_member_ensemble_is_over_the_limit() {
        // The default Lorenz 96 calibration (p = 2, d = 4, 5 iterations).
        let s = Sizes {
            parameters: 2,
            outputs: 4,
            members: 10_000_000,
            iterations: 5,
            all_outputs: true,
        };
        assert!(ensemble_history_bytes(&s) > u128::from(MAX_ESTIMATED_BYTES));
        let default = Sizes { members: 20, ..s };
        assert!(ensemble_history_bytes(&default) < 1 << 20);
    }

    #[test]
    fn bytes_are_shown_in_binary_units() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 << 30), "16.0 GiB");
        assert_eq!(
            human_bytes(u128::MAX),
            format!("{:.1} EiB", u128::MAX as f64 / (1u128 << 60) as f64)
        );
    }
}
