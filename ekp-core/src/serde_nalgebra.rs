//! Serde adapters for nalgebra matrices in a form every format can hold
//! (TOML has no unit type, which nalgebra's own encoding of `Dyn`/`Const<1>`
//! needs): a matrix is `{ rows, cols, data }` with `data` column-major, a
//! vector is a plain array.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
struct Dense {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Dense {
    fn from_matrix(m: &DMatrix<f64>) -> Self {
        Self {
            rows: m.nrows(),
            cols: m.ncols(),
            data: m.as_slice().to_vec(),
        }
    }
    fn into_matrix<E: serde::de::Error>(self) -> Result<DMatrix<f64>, E> {
        if self.rows.checked_mul(self.cols) != Some(self.data.len()) {
            return Err(E::custom(format!(
                "matrix of {}×{} has {} entries",
                self.rows,
                self.cols,
                self.data.len()
            )));
        }
        Ok(DMatrix::from_vec(self.rows, self.cols, self.data))
    }
}

/// `#[serde(with = "matrix")]` for a `DMatrix<f64>`.
pub mod matrix {
    use super::*;

    /// Serialise as `{ rows, cols, data }`.
    pub fn serialize<S: Serializer>(m: &DMatrix<f64>, s: S) -> Result<S::Ok, S::Error> {
        Dense::from_matrix(m).serialize(s)
    }
    /// Deserialise from `{ rows, cols, data }`, checking the size.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DMatrix<f64>, D::Error> {
        Dense::deserialize(d)?.into_matrix()
    }
}

/// `#[serde(with = "vector")]` for a `DVector<f64>`.
pub mod vector {
    use super::*;

    /// Serialise as an array.
    pub fn serialize<S: Serializer>(v: &DVector<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }
    /// Deserialise from an array.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DVector<f64>, D::Error> {
        Ok(DVector::from_vec(Vec::<f64>::deserialize(d)?))
    }
}

/// `#[serde(with = "matrices")]` for a `Vec<DMatrix<f64>>`.
pub mod matrices {
    use super::*;

    /// Serialise as an array of `{ rows, cols, data }`.
    pub fn serialize<S: Serializer>(v: &[DMatrix<f64>], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(Dense::from_matrix)
            .collect::<Vec<_>>()
            .serialize(s)
    }
    /// Deserialise from an array of `{ rows, cols, data }`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DMatrix<f64>>, D::Error> {
        Vec::<Dense>::deserialize(d)?
            .into_iter()
            .map(|m| m.into_matrix::<D::Error>())
            .collect::<Result<Vec<_>, _>>()
    }
}
