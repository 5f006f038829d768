//! What SLURM says about the chain submitted last from a folder, for
//! `ekp-cli status`: each job's state, and each member of an iteration next
//! to the state of the array task that runs it.
//!
//! squeue is asked once per job of `chain.toml` (no accounting database is
//! needed); a job squeue no longer knows has ended (its end state is lost,
//! the member folders have the last word).

use std::collections::BTreeMap;
use std::path::Path;

use super::chain::{Seen, job_states, read_chain};
use crate::workflow::forward::parse_members;

/// The largest task or member number read from squeue or `chain.toml`.
const MAX_NUMBER: usize = 1 << 24;

/// One job of the chain as squeue sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// What it does: `init`, `forward of iteration 2`, ...
    pub job: String,
    /// The SLURM job id.
    pub id: String,
    /// Its tasks' states (`RUNNING 3, PENDING 17`), `ended (no longer known
    /// to squeue)`, or `unknown (why squeue could not tell)`.
    pub state: String,
}

/// The chain submitted last from a folder, as squeue sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainView {
    /// When it was submitted (Unix seconds).
    pub submitted_unix: u64,
    /// Its jobs, in order.
    pub jobs: Vec<JobView>,
    /// `(iteration, member)` → the state of the array task running it.
    members: BTreeMap<(usize, usize), String>,
}

impl ChainView {
    /// The SLURM state of the task that runs `member` (from 1) of
    /// `iteration`, while squeue knows it.
    pub fn member_state(&self, iteration: usize, member: usize) -> Option<&str> {
        self.members.get(&(iteration, member)).map(String::as_str)
    }
}

/// The array task ids a squeue `%i` stands for: `123_4` is task 4,
/// `123_[5-20%4]` tasks 5 to 20 (pending); a job that is not an array, none.
pub fn task_ids(task: &str) -> Vec<usize> {
    let Some((_, t)) = task.split_once('_') else {
        return Vec::new();
    };
    match t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) => {
            let spec = inner.split('%').next().unwrap_or("");
            parse_members(spec, MAX_NUMBER).unwrap_or_default()
        }
        None => t.parse().map(|t| vec![t]).unwrap_or_default(),
    }
}

/// Ask squeue about every job of the chain submitted last from `dir`;
/// `None` if no chain was submitted from it.
pub fn chain_view(dir: &Path) -> Option<ChainView> {
    let chain = read_chain(dir)?;
    let mut view = ChainView {
        submitted_unix: chain.submitted_unix,
        jobs: Vec::new(),
        members: BTreeMap::new(),
    };
    // squeue that cannot be run or reach its controller (status run off the
    // cluster) is asked once, not once per job.
    let mut unreachable: Option<String> = None;
    for j in &chain.jobs {
        let Some(id) = &j.id else { continue };
        let seen = match &unreachable {
            Some(e) => Seen::Error(e.clone()),
            None => job_states(id),
        };
        if let Seen::Error(e) = &seen {
            unreachable = Some(e.clone());
        }
        let state = match seen {
            Seen::Known(states) => {
                if let (Some(it), "forward") = (j.iteration, j.kind.as_str()) {
                    for (task, state) in &states {
                        for t in task_ids(task) {
                            for m in task_members(&j.tasks, t) {
                                view.members.insert((it, m), state.clone());
                            }
                        }
                    }
                }
                super::chain::summarise(&states)
            }
            Seen::Gone => "ended (no longer known to squeue)".to_string(),
            Seen::Error(e) => format!("unknown ({})", last_line(&e)),
        };
        view.jobs.push(JobView {
            job: j.describe(),
            id: id.clone(),
            state,
        });
    }
    Some(view)
}

/// The last non-empty line of squeue's complaint (its verdict).
fn last_line(e: &str) -> &str {
    e.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(e)
}

/// The members array task `t` runs: those listed for it in `tasks`
/// (`--members-per-task K`), else member `t` itself.
fn task_members(tasks: &[String], t: usize) -> Vec<usize> {
    if tasks.is_empty() {
        return vec![t];
    }
    t.checked_sub(1)
        .and_then(|i| tasks.get(i))
        .and_then(|spec| parse_members(spec, MAX_NUMBER).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn squeue_task_ids_expand() {
        assert_eq!(task_ids("123"), Vec::<usize>::new());
        assert_eq!(task_ids("123_4"), vec![4]);
        assert_eq!(task_ids("123_[5-8%2]"), vec![5, 6, 7, 8]);
        assert_eq!(task_ids("123_[1,3-4]"), vec![1, 3, 4]);
        assert_eq!(task_ids("123_[garbage]"), Vec::<usize>::new());
        assert_eq!(task_ids("123_x"), Vec::<usize>::new());
    }

    #[test]
    fn tasks_map_to_their_members() {
        assert_eq!(task_members(&[], 7), vec![7]);
        let tasks = vec!["1-3".to_string(), "4,6".to_string()];
        assert_eq!(task_members(&tasks, 1), vec![1, 2, 3]);
        assert_eq!(task_members(&tasks, 2), vec![4, 6]);
        assert_eq!(task_members(&tasks, 3), Vec::<usize>::new());
        assert_eq!(task_members(&tasks, 0), Vec::<usize>::new());
    }
}
