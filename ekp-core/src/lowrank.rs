//! Streaming `n × n` statistics of large output ensembles, for the low-rank
//! (Woodbury) forms of EKI and ETKI with a diagonal `Γ`.
//!
//! The outputs `g` (`d × N`) are read in blocks of [`BLOCK_ROWS`] rows; each
//! block is copied (gathering the rows and the successful members that take
//! part), centred by its row means, weighted, and its contribution to the
//! `n × n` Gram matrices is added with a blocked matrix product. No `d × n`
//! temporary is ever formed, so the memory beyond `g` is `O(n² + d)` per
//! thread. Blocks are grouped into chunks of a fixed size that run on rayon's
//! threads and are summed in block order, so the result does not depend on
//! the number of threads.
//!
//! EKI's observation perturbations are drawn block by block too
//! ([`Perturbation`]): one seed is drawn from the process's RNG, and block `b`
//! of the standard normals (rows `b·BLOCK_ROWS ..`, every member, column by
//! column) comes from its own stream of a ChaCha8 generator with that seed.
//! The draws are therefore reproducible from the seed, independent of the
//! thread count, and the same whether the dense or the low-rank path uses them.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::dense;

/// Rows per block (fixed: results and draws do not depend on the thread count).
pub(crate) const BLOCK_ROWS: usize = 512;

/// Blocks summed sequentially by one parallel task.
const CHUNK_BLOCKS: usize = 32;

/// At most this many blocks are gathered into one matrix product (long
/// enough for the SIMD kernel to run at speed) ...
const GEMM_BLOCKS: usize = 8;

/// ... as long as the gathered block has at most this many values (so the
/// scratch memory per thread stays that of one block for large `n`).
const GEMM_VALUES: usize = 1 << 18;

/// The blocks gathered per matrix product for `n` members.
fn gemm_blocks(n: usize) -> usize {
    (GEMM_VALUES / (BLOCK_ROWS * n.max(1))).clamp(1, GEMM_BLOCKS)
}

/// The rows of `g` that take part: the first `len`, or a list (update groups).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rows<'a> {
    /// Rows `0..len`.
    All(usize),
    /// These rows, in this order.
    List(&'a [usize]),
}

impl Rows<'_> {
    /// How many rows.
    pub(crate) fn len(&self) -> usize {
        match self {
            Rows::All(len) => *len,
            Rows::List(rows) => rows.len(),
        }
    }
}

/// Observation perturbations `ξ_j ~ N(0, scale·Γ)` for every member, drawn in
/// row blocks from one seed (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Perturbation {
    seed: u64,
    members: usize,
}

impl Perturbation {
    /// Draws the seed of the perturbations of `members` members from `rng`.
    pub(crate) fn draw<R: Rng + ?Sized>(rng: &mut R, members: usize) -> Self {
        Self {
            seed: rng.random(),
            members,
        }
    }

    /// The standard normals of block `block` (`len` rows, every member).
    fn block(&self, block: usize, len: usize) -> DMatrix<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(block as u64);
        let mut z = DMatrix::zeros(len, self.members);
        for v in z.iter_mut() {
            *v = rng.sample(StandardNormal);
        }
        z
    }

    /// All `d × members` standard normals (for the dense path).
    pub(crate) fn standard_normals(&self, d: usize) -> DMatrix<f64> {
        let mut z = DMatrix::zeros(d, self.members);
        let blocks = d.div_ceil(BLOCK_ROWS);
        for b in 0..blocks {
            let k0 = b * BLOCK_ROWS;
            let len = BLOCK_ROWS.min(d - k0);
            z.rows_mut(k0, len).copy_from(&self.block(b, len));
        }
        z
    }
}

/// The `n × n` statistics of the centred, weighted outputs of one update:
/// with `A` the anomalies of the selected rows and members (`g − ḡ`),
/// `W = diag(w)`, `r = y − ḡ` and `Ξ` the perturbations of the selected
/// members (`sd ⊙ z`):
/// `m = Aᵀ W A`, `c = Aᵀ W r`, `e = Aᵀ W Ξ`.
#[derive(Clone, Debug)]
pub(crate) struct Gram {
    /// `Aᵀ W A` (`n × n`).
    pub m: DMatrix<f64>,
    /// `Aᵀ W (y − ḡ)` (`n`).
    pub c: DVector<f64>,
    /// `Aᵀ W Ξ` (`n × n`), when perturbations were given.
    pub e: Option<DMatrix<f64>>,
}

impl Gram {
    fn zeros(n: usize, with_e: bool) -> Self {
        Self {
            m: DMatrix::zeros(n, n),
            c: DVector::zeros(n),
            e: with_e.then(|| DMatrix::zeros(n, n)),
        }
    }

    fn add(&mut self, other: &Gram) {
        self.m += &other.m;
        self.c += &other.c;
        if let (Some(e), Some(o)) = (self.e.as_mut(), other.e.as_ref()) {
            *e += o;
        }
    }
}

/// The unweighted statistics `AᵀA` and `Aᵀ (y − ḡ)` of an update's outputs
/// (every row of the observation, the successful members), recovered from
/// the update's own [`Gram`] when its weights are all equal (a scalar `Γ`):
/// the CRPS of the iteration's metrics needs exactly these, so it need not
/// read the outputs a second time.
#[derive(Clone, Debug)]
pub(crate) struct UnitGram {
    /// `AᵀA` (`n × n`).
    pub m: DMatrix<f64>,
    /// `Aᵀ (y − ḡ)` (`n`).
    pub c: DVector<f64>,
}

impl UnitGram {
    /// Offer the update's `gram` (before any prior rows are added) to
    /// `slot`: kept when it covers every row and the weights are one value
    /// `w > 0` (then `AᵀA = m / w`, `Aᵀ(y − ḡ) = c / w`); ignored otherwise.
    pub(crate) fn offer(
        slot: Option<&std::cell::OnceCell<UnitGram>>,
        rows: &Rows<'_>,
        weights: &DVector<f64>,
        gram: &Gram,
    ) {
        let (Some(slot), Rows::All(_)) = (slot, rows) else {
            return;
        };
        let Some(&w) = weights.iter().next() else {
            return;
        };
        if !(w > 0.0 && w.is_finite()) || weights.iter().any(|&v| v != w) {
            return;
        }
        let _ = slot.set(UnitGram {
            m: &gram.m / w,
            c: &gram.c / w,
        });
    }
}

/// The inputs of [`gram`].
pub(crate) struct GramInput<'a> {
    /// The outputs (`d × N`, every member).
    pub g: &'a DMatrix<f64>,
    /// The rows of `g` that take part (`m` of them).
    pub rows: Rows<'a>,
    /// The members (columns of `g`) that take part (`n` of them).
    pub cols: &'a [usize],
    /// The weights `w` (length `m`).
    pub weights: &'a DVector<f64>,
    /// The data `y` (length `m`).
    pub y: &'a DVector<f64>,
    /// The perturbations and their standard deviations (length `m`).
    pub perturbation: Option<(&'a Perturbation, &'a DVector<f64>)>,
}

/// Computes the [`Gram`] statistics of `input`, streaming over row blocks.
pub(crate) fn gram(input: &GramInput<'_>) -> Gram {
    let m_rows = input.rows.len();
    let n = input.cols.len();
    let blocks = m_rows.div_ceil(BLOCK_ROWS);
    let chunks = blocks.div_ceil(CHUNK_BLOCKS);
    let with_e = input.perturbation.is_some();
    let unit_weights = input.weights.iter().all(|&w| w == 1.0);
    let partials: Vec<Gram> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut acc = Gram::zeros(n, with_e);
            let gb = gemm_blocks(n);
            let mut work = BlockWork::new(n, gb, unit_weights);
            let last = ((c + 1) * CHUNK_BLOCKS).min(blocks);
            let mut b = c * CHUNK_BLOCKS;
            while b < last {
                let nb = gb.min(last - b);
                work.add_blocks(input, b, nb, &mut acc);
                b += nb;
            }
            acc
        })
        .collect();
    let mut total = Gram::zeros(n, with_e);
    for p in &partials {
        total.add(p);
    }
    dense::mirror_lower(&mut total.m);
    total
}

/// Scratch buffers of one thread.
struct BlockWork {
    a: DMatrix<f64>,
    wa: DMatrix<f64>,
    mean: Vec<f64>,
    /// Every weight is 1: `W A = A` (no weighted copy).
    unit_weights: bool,
}

impl BlockWork {
    fn new(n: usize, blocks: usize, unit_weights: bool) -> Self {
        Self {
            a: DMatrix::zeros(blocks * BLOCK_ROWS, n),
            wa: DMatrix::zeros(if unit_weights { 0 } else { blocks * BLOCK_ROWS }, n),
            mean: vec![0.0; blocks * BLOCK_ROWS],
            unit_weights,
        }
    }

    /// Adds the contribution of the `nb` blocks from block `b0` on to `acc`.
    fn add_blocks(&mut self, input: &GramInput<'_>, b0: usize, nb: usize, acc: &mut Gram) {
        let m_rows = input.rows.len();
        let n = input.cols.len();
        let k0 = b0 * BLOCK_ROWS;
        let len = (nb * BLOCK_ROWS).min(m_rows - k0);
        if self.a.nrows() != len {
            self.a = DMatrix::zeros(len, n);
            if !self.unit_weights {
                self.wa = DMatrix::zeros(len, n);
            }
        }
        if self.mean.len() < len {
            self.mean.resize(len, 0.0);
        }
        // Gather the blocks (rows k0..k0+len of the selection, members
        // `cols`), on plain slices so that the loops vectorise.
        let d = input.g.nrows();
        let g = input.g.as_slice();
        let a = &mut self.a.as_mut_slice()[..len * n];
        for (&j, dst) in input.cols.iter().zip(a.chunks_exact_mut(len)) {
            let col = &g[j * d..(j + 1) * d];
            match input.rows {
                Rows::All(_) => dst.copy_from_slice(&col[k0..k0 + len]),
                Rows::List(rows) => {
                    for (v, &r) in dst.iter_mut().zip(&rows[k0..k0 + len]) {
                        *v = col[r];
                    }
                }
            }
        }
        // Row means, then centre (and weight, unless every weight is 1).
        let mean = &mut self.mean[..len];
        mean.fill(0.0);
        for col in a.chunks_exact(len) {
            for (s, v) in mean.iter_mut().zip(col) {
                *s += v;
            }
        }
        let inv_n = 1.0 / n as f64;
        for s in mean.iter_mut() {
            *s *= inv_n;
        }
        let w = &input.weights.as_slice()[k0..k0 + len];
        if self.unit_weights {
            for col in a.chunks_exact_mut(len) {
                for (v, m) in col.iter_mut().zip(mean.iter()) {
                    *v -= m;
                }
            }
        } else {
            let wa = &mut self.wa.as_mut_slice()[..len * n];
            for (col, wcol) in a.chunks_exact_mut(len).zip(wa.chunks_exact_mut(len)) {
                for (((v, wv), m), wk) in
                    col.iter_mut().zip(wcol.iter_mut()).zip(mean.iter()).zip(w)
                {
                    *v -= m;
                    *wv = *v * wk;
                }
            }
        }
        let wa = if self.unit_weights { &self.a } else { &self.wa };
        // m += Aᵀ (W A): symmetric, so only its lower triangle is formed
        // (faer's SIMD kernel reads the transposed block in place); [`gram`]
        // mirrors it.
        dense::add_transpose_mul_lower(&mut acc.m, &self.a, wa);
        // c += (W A)ᵀ (y − ḡ).
        let resid = DVector::from_iterator(len, (0..len).map(|k| input.y[k0 + k] - mean[k]));
        acc.c.gemv_tr(1.0, wa, &resid, 1.0);
        if let (Some((pert, sd)), Some(e)) = (input.perturbation, acc.e.as_mut()) {
            // The perturbations of each block from its own stream.
            let mut xi = DMatrix::zeros(len, n);
            for b in b0..b0 + nb {
                let kb = b * BLOCK_ROWS - k0;
                let blen = BLOCK_ROWS.min(len - kb);
                let z = pert.block(b, blen);
                for (jj, &j) in input.cols.iter().enumerate() {
                    let mut dst = xi.column_mut(jj);
                    for k in 0..blen {
                        dst[kb + k] = z[(k, j)] * sd[k0 + kb + k];
                    }
                }
            }
            dense::add_transpose_mul(e, wa, &xi);
        }
    }
}

/// Per-member weighted squared misfits `(g_j − y)ᵀ diag(w) (g_j − y)` for the
/// members `cols`, read column by column (no copy of `g`).
pub(crate) fn weighted_misfits(
    g: &DMatrix<f64>,
    cols: &[usize],
    y: &DVector<f64>,
    weights: &DVector<f64>,
) -> DVector<f64> {
    let per: Vec<f64> = cols
        .par_iter()
        .map(|&j| weighted_square_sum(g.column(j).as_slice(), y.as_slice(), weights.as_slice()))
        .collect();
    DVector::from_vec(per)
}

/// `Σ_i (g_i − y_i)² w_i` with eight independent partial sums (a fixed order,
/// so the result is reproducible), which lets the loop vectorise.
fn weighted_square_sum(g: &[f64], y: &[f64], w: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let mut gc = g.chunks_exact(LANES);
    let mut yc = y.chunks_exact(LANES);
    let mut wc = w.chunks_exact(LANES);
    for ((gs, ys), ws) in (&mut gc).zip(&mut yc).zip(&mut wc) {
        for l in 0..LANES {
            let r = gs[l] - ys[l];
            acc[l] += r * r * ws[l];
        }
    }
    let mut tail = 0.0;
    for ((gv, yv), wv) in gc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .zip(wc.remainder())
    {
        let r = gv - yv;
        tail += r * r * wv;
    }
    acc.iter().sum::<f64>() + tail
}

/// A copy of `m`, written by rayon's threads in fixed chunks (a large copy
/// is dominated by first-touch page faults, which then run in parallel).
pub(crate) fn par_clone(m: &DMatrix<f64>) -> DMatrix<f64> {
    const CHUNK: usize = 1 << 16;
    let mut out = vec![0.0f64; m.len()];
    out.par_chunks_mut(CHUNK)
        .zip(m.as_slice().par_chunks(CHUNK))
        .for_each(|(dst, src)| dst.copy_from_slice(src));
    DMatrix::from_vec(m.nrows(), m.ncols(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`gram`] against the dense formulas with nalgebra's products: several
    /// row blocks (the last partial), a row list, a subset of members, the
    /// perturbation term.
    #[test]
    fn gram_matches_the_dense_nalgebra_formulas() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (d, total_n) = (1300usize, 30usize);
        let g = DMatrix::from_fn(d, total_n, |_, _| rng.random_range(-1.0..1.0));
        let rows_list: Vec<usize> = (0..d).filter(|i| i % 3 != 1).collect();
        let cols: Vec<usize> = (0..total_n).filter(|j| j % 7 != 3).collect();
        let pert = Perturbation::draw(&mut rng, total_n);
        for (rows, unit) in [
            (Rows::All(d), false),
            (Rows::List(&rows_list), false),
            (Rows::All(d), true),
        ] {
            let idx: Vec<usize> = match rows {
                Rows::All(len) => (0..len).collect(),
                Rows::List(r) => r.to_vec(),
            };
            let m = idx.len();
            let w = DVector::from_fn(m, |_, _| {
                if unit {
                    1.0
                } else {
                    rng.random_range(0.5..2.0)
                }
            });
            let y = DVector::from_fn(m, |_, _| rng.random_range(-1.0..1.0));
            let sd = DVector::from_fn(m, |_, _| rng.random_range(0.1..0.3));
            let stats = gram(&GramInput {
                g: &g,
                rows,
                cols: &cols,
                weights: &w,
                y: &y,
                perturbation: Some((&pert, &sd)),
            });
            // Dense reference.
            let sel = DMatrix::from_fn(m, cols.len(), |i, j| g[(idx[i], cols[j])]);
            let mean = sel.column_sum() / cols.len() as f64;
            let mut a = sel.clone();
            for mut col in a.column_iter_mut() {
                col -= &mean;
            }
            let wa = DMatrix::from_diagonal(&w) * &a;
            let z = pert.standard_normals(m);
            let xi = DMatrix::from_fn(m, cols.len(), |i, j| z[(i, cols[j])] * sd[i]);
            let m_ref = a.transpose() * &wa;
            let c_ref = wa.transpose() * (&y - &mean);
            let e_ref = wa.transpose() * &xi;
            let scale = m_ref.norm();
            assert!((&stats.m - &m_ref).norm() <= 1e-12 * scale);
            assert_eq!(stats.m, stats.m.transpose());
            assert!((&stats.c - &c_ref).norm() <= 1e-12 * scale);
            let e = stats.e.unwrap_or_default();
            assert!((&e - &e_ref).norm() <= 1e-12 * scale);
        }
    }
}
