//! `ekp-cli bench`.

use crate::bench::BenchArgs;
use crate::error::Result;

use super::say;

pub(super) fn bench(args: BenchArgs) -> Result<()> {
    crate::bench::bench(&args, &say)
}
