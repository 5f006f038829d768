//! `ekp-cli slurm`.

use crate::error::Result;
use crate::slurm::SlurmArgs;

use super::say;

pub(super) fn slurm(args: SlurmArgs) -> Result<()> {
    crate::slurm::slurm(&args, &say)
}
