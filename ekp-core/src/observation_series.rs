//! Several observations and minibatching (EKP.jl's `ObservationSeries` and
//! `Minibatcher`s).
//!
//! An [`ObservationSeries`] holds observations `y_1 … y_K` (each with its own
//! `Γ_k`). Its minibatcher cuts them into *epochs*, each a list of minibatches
//! (lists of observation indices); every update uses the current minibatch —
//! its observations stacked, `y = [y_a; y_b; …]`, `Γ = blockdiag(Γ_a, Γ_b, …)`,
//! in minibatch order — and then moves to the next minibatch, starting a new
//! epoch after the last one. The model outputs told to an update are those of
//! the current minibatch, stacked the same way
//! ([`EnsembleKalmanProcess::update`](crate::EnsembleKalmanProcess::update));
//! [`EnsembleKalmanProcess::update_from_all_outputs`](crate::EnsembleKalmanProcess::update_from_all_outputs)
//! takes the outputs for every observation instead and picks the rows.
//!
//! Minibatchers ([`Minibatcher`]):
//! - `fixed` (EKP.jl's `FixedMinibatcher`): the given minibatches, in the given
//!   order every epoch, or shuffled each epoch (`random_order`; EKP.jl's
//!   `"random"` method);
//! - `random-fixed-size` (EKP.jl's `RandomFixedSizeMinibatcher`): each epoch,
//!   a random permutation of all observations cut into minibatches of `size`;
//!   a remainder either joins the last minibatch (`extend`, EKP.jl's default) or
//!   is left out of that epoch (`trim`).
//!
//! Without a minibatcher, every update uses all observations (one minibatch per
//! epoch). The minibatcher draws from its own ChaCha20 stream: the process's
//! seed, stream 1 (the process itself draws from stream 0), so minibatching
//! never shifts the other random draws, and the same seed gives the same
//! minibatches. The first epoch is drawn when the process is built, each
//! further one when the previous one is exhausted. Indices are 0-based here
//! (1-based in calibration files).

use nalgebra::DVector;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::observation::{NoiseCovariance, Observation, ObservationError};

/// What a `random-fixed-size` minibatcher does with the observations left
/// over when `size` does not divide their number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remainder {
    /// The last minibatch of each epoch takes them (up to `2 size − 1`
    /// observations; EKP.jl's `"extend"`, its default).
    #[default]
    Extend,
    /// They sit out that epoch (EKP.jl's `"trim"`).
    Trim,
}

/// How the observations of a series are cut into minibatches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Minibatcher {
    /// Given minibatches (EKP.jl's `FixedMinibatcher`).
    Fixed {
        /// The minibatches, as lists of observation indices (0-based).
        batches: Vec<Vec<usize>>,
        /// Shuffle the order of the minibatches every epoch (EKP.jl's method
        /// `"random"`) instead of keeping it (`"order"`).
        random_order: bool,
    },
    /// Random minibatches of a fixed size (EKP.jl's `RandomFixedSizeMinibatcher`).
    RandomFixedSize {
        /// Observations per minibatch.
        size: usize,
        /// What happens to a remainder.
        remainder: Remainder,
    },
}

impl Minibatcher {
    /// One minibatch holding all `k` observations, in order (EKP.jl's
    /// `no_minibatcher(k)`).
    pub fn all(k: usize) -> Self {
        Minibatcher::Fixed {
            batches: vec![(0..k).collect()],
            random_order: false,
        }
    }

    /// The name used in calibration files (`minibatch.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Minibatcher::Fixed { .. } => "fixed",
            Minibatcher::RandomFixedSize { .. } => "random-fixed-size",
        }
    }

    /// Checks the minibatcher against `k` observations; the message names the key.
    pub fn validate(&self, k: usize) -> Result<(), String> {
        match self {
            Minibatcher::Fixed { batches, .. } => {
                if batches.is_empty() {
                    return Err("minibatch.batches is empty".into());
                }
                for (b, batch) in batches.iter().enumerate() {
                    if batch.is_empty() {
                        return Err(format!("minibatch.batches[{}] is empty", b + 1));
                    }
                    for (i, &o) in batch.iter().enumerate() {
                        if o >= k {
                            return Err(format!(
                                "minibatch.batches[{}] names observation {} (counting from 1), but there are {k}",
                                b + 1,
                                o + 1
                            ));
                        }
                        if batch[..i].contains(&o) {
                            return Err(format!(
                                "minibatch.batches[{}] names observation {} twice",
                                b + 1,
                                o + 1
                            ));
                        }
                    }
                }
                Ok(())
            }
            Minibatcher::RandomFixedSize { size, .. } => {
                if *size == 0 || *size > k {
                    Err(format!(
                        "minibatch.size must be between 1 and the number of observations ({k}), got {size}"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// A new epoch of minibatches for `k` observations.
    fn new_epoch<R: Rng + ?Sized>(&self, k: usize, rng: &mut R) -> Vec<Vec<usize>> {
        match self {
            Minibatcher::Fixed {
                batches,
                random_order,
            } => {
                if *random_order {
                    let mut order: Vec<usize> = (0..batches.len()).collect();
                    shuffle(&mut order, rng);
                    order.into_iter().map(|b| batches[b].clone()).collect()
                } else {
                    batches.clone()
                }
            }
            Minibatcher::RandomFixedSize { size, remainder } => {
                let mut perm: Vec<usize> = (0..k).collect();
                shuffle(&mut perm, rng);
                let count = k / size;
                (0..count)
                    .map(|b| {
                        let end = if b + 1 == count && *remainder == Remainder::Extend {
                            k
                        } else {
                            (b + 1) * size
                        };
                        perm[b * size..end].to_vec()
                    })
                    .collect()
            }
        }
    }
}

/// Fisher–Yates, from the last position down (`j` uniform in `0..=i`).
fn shuffle<R: Rng + ?Sized>(v: &mut [usize], rng: &mut R) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

/// Where a series stands: the epoch and the minibatch within it (0-based).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinibatchPosition {
    /// The epoch.
    pub epoch: usize,
    /// The minibatch within the epoch.
    pub batch: usize,
}

/// Several observations with a minibatcher (EKP.jl's `ObservationSeries`).
/// A single [`Observation`] converts into a series of one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SeriesRepr", into = "SeriesRepr")]
pub struct ObservationSeries {
    observations: Vec<Observation>,
    names: Vec<String>,
    minibatcher: Minibatcher,
    rng: ChaCha20Rng,
    epochs: Vec<Vec<Vec<usize>>>,
    position: MinibatchPosition,
    /// The current minibatch's observations, stacked (derived state).
    current: Observation,
}

#[derive(Clone, Serialize, Deserialize)]
struct SeriesRepr {
    observations: Vec<Observation>,
    names: Vec<String>,
    minibatcher: Minibatcher,
    rng: ChaCha20Rng,
    epochs: Vec<Vec<Vec<usize>>>,
    position: MinibatchPosition,
}

impl From<ObservationSeries> for SeriesRepr {
    fn from(s: ObservationSeries) -> Self {
        Self {
            observations: s.observations,
            names: s.names,
            minibatcher: s.minibatcher,
            rng: s.rng,
            epochs: s.epochs,
            position: s.position,
        }
    }
}

impl TryFrom<SeriesRepr> for ObservationSeries {
    type Error = String;
    fn try_from(r: SeriesRepr) -> Result<Self, String> {
        let k = r.observations.len();
        r.minibatcher.validate(k)?;
        if r.names.len() != k {
            return Err(format!("{} names for {k} observations", r.names.len()));
        }
        let batch = r
            .epochs
            .get(r.position.epoch)
            .and_then(|e| e.get(r.position.batch))
            .ok_or_else(|| "the minibatch position is outside the stored epochs".to_string())?;
        if batch.is_empty() || batch.iter().any(|&o| o >= k) {
            return Err("the current minibatch names an unknown observation".into());
        }
        let current = stack(&r.observations, batch);
        Ok(Self {
            observations: r.observations,
            names: r.names,
            minibatcher: r.minibatcher,
            rng: r.rng,
            epochs: r.epochs,
            position: r.position,
            current,
        })
    }
}

/// The observations `batch` of `all`, stacked.
fn stack(all: &[Observation], batch: &[usize]) -> Observation {
    if let [only] = batch {
        return all[*only].clone();
    }
    let dim: usize = batch.iter().map(|&o| all[o].dim()).sum();
    let mut values = DVector::zeros(dim);
    let mut at = 0;
    for &o in batch {
        values.rows_mut(at, all[o].dim()).copy_from(all[o].values());
        at += all[o].dim();
    }
    let blocks: Vec<&NoiseCovariance> = batch.iter().map(|&o| all[o].noise()).collect();
    Observation::from_parts_unchecked(values, NoiseCovariance::block_diagonal(&blocks))
}

/// The ChaCha20 stream of the minibatcher for a seed: stream 1.
fn minibatch_rng(seed: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(1);
    rng
}

impl From<Observation> for ObservationSeries {
    fn from(o: Observation) -> Self {
        let current = o.clone();
        Self {
            observations: vec![o],
            names: vec!["series_1".into()],
            minibatcher: Minibatcher::all(1),
            rng: minibatch_rng(0),
            epochs: vec![vec![vec![0]]],
            position: MinibatchPosition::default(),
            current,
        }
    }
}

impl ObservationSeries {
    /// A series of `observations`, all of them used in every update (no
    /// minibatching). Names default to `series_1`, `series_2`, … as in EKP.jl.
    pub fn new(observations: Vec<Observation>) -> Result<Self, ObservationError> {
        let k = observations.len();
        Self::with_minibatcher(observations, Minibatcher::all(k))
    }

    /// A series with a minibatcher. Its first epoch is drawn from seed 0 here
    /// and redrawn from the process's seed when a process is built with it.
    pub fn with_minibatcher(
        observations: Vec<Observation>,
        minibatcher: Minibatcher,
    ) -> Result<Self, ObservationError> {
        let k = observations.len();
        if k == 0 {
            return Err(ObservationError::Empty);
        }
        minibatcher
            .validate(k)
            .map_err(ObservationError::Minibatch)?;
        let names = (1..=k).map(|i| format!("series_{i}")).collect();
        let mut s = Self {
            current: observations[0].clone(),
            observations,
            names,
            minibatcher,
            rng: minibatch_rng(0),
            epochs: Vec::new(),
            position: MinibatchPosition::default(),
        };
        s.reseed(0);
        Ok(s)
    }

    /// Names for the observations (one per observation).
    pub fn with_names(mut self, names: Vec<String>) -> Result<Self, ObservationError> {
        if names.len() != self.observations.len() {
            return Err(ObservationError::Minibatch(format!(
                "{} names for {} observations",
                names.len(),
                self.observations.len()
            )));
        }
        self.names = names;
        Ok(self)
    }

    /// One observation cut into consecutive observations of the given sizes
    /// (summing to its dimension). `Γ` must be block diagonal over them
    /// (cross-block entries at most `1e-12 · max|Γ|`), since a minibatch drops
    /// the correlations between observations.
    pub fn split(
        observation: &Observation,
        sizes: &[usize],
        minibatcher: Minibatcher,
    ) -> Result<Self, ObservationError> {
        let total: usize = sizes.iter().sum();
        if sizes.contains(&0) || total != observation.dim() {
            return Err(ObservationError::Minibatch(format!(
                "observation block sizes {sizes:?} must be positive and add up to the {} data values",
                observation.dim()
            )));
        }
        let scale = observation.noise().diagonal().amax();
        let cross = observation.noise().max_cross_block(sizes);
        if cross > 1e-12 * scale {
            return Err(ObservationError::Minibatch(format!(
                "the noise covariance couples different observation blocks (|Γ_ij| up to {cross:e}); \
                 minibatching needs Γ block diagonal over the blocks"
            )));
        }
        let mut parts = Vec::with_capacity(sizes.len());
        let mut at = 0;
        for &k in sizes {
            let idx: Vec<usize> = (at..at + k).collect();
            let values = observation.values().rows(at, k).into_owned();
            parts.push(Observation::new(
                values,
                observation.noise().restrict(&idx)?,
            )?);
            at += k;
        }
        Self::with_minibatcher(parts, minibatcher)
    }

    /// Restart the minibatching from `seed` (stream 1 of its ChaCha20): a new
    /// first epoch, positioned at its first minibatch. The process builder calls
    /// this with the process's seed.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = minibatch_rng(seed);
        let k = self.observations.len();
        self.epochs = vec![self.minibatcher.new_epoch(k, &mut self.rng)];
        self.position = MinibatchPosition::default();
        self.current = stack(&self.observations, &self.epochs[0][0]);
    }

    /// Move to the next minibatch, drawing a new epoch after the last one.
    pub fn advance(&mut self) {
        let len = self.epochs[self.position.epoch].len();
        if self.position.batch + 1 < len {
            self.position.batch += 1;
        } else {
            let epoch = self
                .minibatcher
                .new_epoch(self.observations.len(), &mut self.rng);
            self.epochs.push(epoch);
            self.position = MinibatchPosition {
                epoch: self.position.epoch + 1,
                batch: 0,
            };
        }
        self.current = stack(&self.observations, self.current_minibatch());
    }

    /// The observations.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }
    /// Their names.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// The minibatcher.
    pub fn minibatcher(&self) -> &Minibatcher {
        &self.minibatcher
    }
    /// Every epoch drawn so far, the current one last.
    pub fn epochs(&self) -> &[Vec<Vec<usize>>] {
        &self.epochs
    }
    /// The current epoch and minibatch.
    pub fn position(&self) -> MinibatchPosition {
        self.position
    }
    /// The observations (0-based) of the current minibatch.
    pub fn current_minibatch(&self) -> &[usize] {
        &self.epochs[self.position.epoch][self.position.batch]
    }
    /// The current minibatch's observations, stacked: what the next update fits.
    pub fn current(&self) -> &Observation {
        &self.current
    }
    /// All observations stacked, in series order (`y = [y_1; …; y_K]`).
    pub fn all_stacked(&self) -> Observation {
        let all: Vec<usize> = (0..self.observations.len()).collect();
        stack(&self.observations, &all)
    }
    /// The dimension of all observations together.
    pub fn total_dim(&self) -> usize {
        self.observations.iter().map(Observation::dim).sum()
    }
    /// The rows of the current minibatch within [`all_stacked`](Self::all_stacked),
    /// in minibatch order.
    pub fn current_rows(&self) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(self.observations.len());
        let mut at = 0;
        for o in &self.observations {
            offsets.push(at);
            at += o.dim();
        }
        self.current_minibatch()
            .iter()
            .flat_map(|&o| offsets[o]..offsets[o] + self.observations[o].dim())
            .collect()
    }
}
