//! Names of the iteration and member folders.
//!
//! Members are numbered from 1 (SLURM array task ids), iterations from 0.
//! Numbers are zero-padded to 3 digits, or to the width of the largest number
//! when that is wider (1000 members: `member_0001` … `member_1000`), so the
//! folders sort in order.

use std::path::PathBuf;

/// Decimal digits of `n`.
fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Where the folders of one calibration live.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The calibration folder (`DIR`, or `run`'s output folder).
    pub root: PathBuf,
    /// Members per ensemble `N`.
    pub members: usize,
    /// The most updates (`process.iterations`): iterations run from 0 to this.
    pub iterations: usize,
}

impl Layout {
    /// The layout of a calibration of `members` members and at most
    /// `iterations` updates in `root`.
    pub fn new(root: impl Into<PathBuf>, members: usize, iterations: usize) -> Self {
        Self {
            root: root.into(),
            members,
            iterations,
        }
    }

    /// `iteration_007` (0-based).
    pub fn iteration_name(&self, iteration: usize) -> String {
        let w = digits(self.iterations).max(3);
        format!("iteration_{iteration:0w$}")
    }

    /// `member_003` (1-based).
    pub fn member_name(&self, member: usize) -> String {
        let w = digits(self.members).max(3);
        format!("member_{member:0w$}")
    }

    /// `ROOT/iteration_007`.
    pub fn iteration_dir(&self, iteration: usize) -> PathBuf {
        self.root.join(self.iteration_name(iteration))
    }

    /// `ROOT/iteration_007/member_003` (member 1-based).
    pub fn member_dir(&self, iteration: usize, member: usize) -> PathBuf {
        self.iteration_dir(iteration).join(self.member_name(member))
    }

    /// `iteration_007/member_003`, for messages.
    pub fn member_label(&self, iteration: usize, member: usize) -> String {
        format!(
            "{}/{}",
            self.iteration_name(iteration),
            self.member_name(member)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_padded_to_three_digits_or_wider() {
        let l = Layout::new("d", 20, 5);
        assert_eq!(l.member_name(1), "member_001");
        assert_eq!(l.iteration_name(0), "iteration_000");
        let l = Layout::new("d", 1000, 1200);
        assert_eq!(l.member_name(7), "member_0007");
        assert_eq!(l.iteration_name(12), "iteration_0012");
        assert_eq!(l.member_name(1000), "member_1000");
    }
}
