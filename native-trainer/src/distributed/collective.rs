//! The one interface training needs from a communication engine ([`Collective`]), and the two
//! engines that need no library: [`Solo`] (one process, one device) and [`ThreadGroup`] (one
//! thread per device inside one process). MPI and NCCL implement the same trait in `mpi.rs` and
//! `nccl.rs`.
//!
//! Every call is collective: all ranks make the same calls in the same order with buffers of the
//! same length. Every rank ends with the same bits (the replicas stay identical).

use anyhow::{bail, Result};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// All-reduce, broadcast and all-gather of `f32` buffers in host memory.
pub trait Collective {
    /// This process's (or thread's) rank in `0..world_size`.
    fn rank(&self) -> usize;
    /// Ranks taking part.
    fn world_size(&self) -> usize;
    /// Engine name for the logs: `single`, `threads`, `mpi`, `nccl`.
    fn engine(&self) -> &'static str;
    /// Replaces `values` by their element-wise sum over all ranks.
    fn all_reduce_sum(&mut self, values: &mut [f32]) -> Result<()>;
    /// Replaces `values` by rank `root`'s.
    fn broadcast(&mut self, values: &mut [f32], root: usize) -> Result<()>;
    /// Every rank's `local` (the same length on all ranks), concatenated in rank order.
    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>>;
    /// This rank is done (after its last call): its leaving is no longer a failure.
    fn finish(&mut self) {}
}

/// A world of one: every call returns its input.
#[derive(Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn engine(&self) -> &'static str {
        "single"
    }
    fn all_reduce_sum(&mut self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&mut self, _values: &mut [f32], _root: usize) -> Result<()> {
        Ok(())
    }
    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>> {
        Ok(local.to_vec())
    }
}

/// What the threads of a [`ThreadGroup`] share: one slot per rank, filled in a round.
#[derive(Debug)]
struct Rounds {
    slots: Vec<Option<Vec<f32>>>,
    /// The buffers of the last completed round, in rank order.
    completed: Arc<Vec<Vec<f32>>>,
    /// Completed rounds.
    round: u64,
    /// Why the group cannot go on (a rank left early).
    broken: Option<String>,
}

/// Ranks as threads of one process (several devices in one process). Each round every thread
/// deposits its buffer; the last to arrive publishes all of them and every thread computes its
/// result from the same buffers in rank order, so all results are bit-identical.
#[derive(Debug)]
pub struct ThreadGroup {
    rank: usize,
    world_size: usize,
    shared: Arc<(Mutex<Rounds>, Condvar)>,
    timeout: Duration,
    finished: bool,
}

impl ThreadGroup {
    /// One member per rank, to hand one to each thread. A call waits at most `timeout` for the
    /// other ranks, then fails naming the ranks that did not arrive.
    pub fn new(world_size: usize, timeout: Duration) -> Vec<ThreadGroup> {
        let rounds = Rounds {
            slots: vec![None; world_size],
            completed: Arc::new(Vec::new()),
            round: 0,
            broken: None,
        };
        let shared = Arc::new((Mutex::new(rounds), Condvar::new()));
        (0..world_size)
            .map(|rank| ThreadGroup {
                rank,
                world_size,
                shared: Arc::clone(&shared),
                timeout,
                finished: false,
            })
            .collect()
    }

    /// Deposits `local` and returns every rank's buffer of this round.
    fn exchange(&mut self, local: Vec<f32>) -> Result<Arc<Vec<Vec<f32>>>> {
        let (lock, wake) = &*self.shared;
        let mut rounds = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(reason) = &rounds.broken {
            bail!("rank {}: {reason}", self.rank);
        }
        let round = rounds.round;
        rounds.slots[self.rank] = Some(local);
        if rounds.slots.iter().all(Option::is_some) {
            let buffers = rounds
                .slots
                .iter_mut()
                .map(|slot| slot.take().unwrap_or_default());
            rounds.completed = Arc::new(buffers.collect());
            rounds.round += 1;
            wake.notify_all();
            return Ok(Arc::clone(&rounds.completed));
        }
        let deadline = Instant::now() + self.timeout;
        while rounds.round == round {
            if let Some(reason) = &rounds.broken {
                bail!("rank {}: {reason}", self.rank);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let missing: Vec<String> = (0..self.world_size)
                    .filter(|rank| rounds.slots[*rank].is_none())
                    .map(|rank| rank.to_string())
                    .collect();
                bail!(
                    "rank {}: ranks [{}] did not reach the collective call within {} s",
                    self.rank,
                    missing.join(", "),
                    self.timeout.as_secs()
                );
            }
            rounds = wake
                .wait_timeout(rounds, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        Ok(Arc::clone(&rounds.completed))
    }
}

impl Drop for ThreadGroup {
    /// A member dropped before `finish` ([`Collective::finish`]) (its thread failed) releases the others
    /// with an error naming it instead of leaving them waiting.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (lock, wake) = &*self.shared;
        let mut rounds = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rounds.broken.get_or_insert_with(|| {
            format!("rank {} stopped before the end of training", self.rank)
        });
        wake.notify_all();
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world_size
    }
    fn engine(&self) -> &'static str {
        "threads"
    }
    fn finish(&mut self) {
        self.finished = true;
    }
    fn all_reduce_sum(&mut self, values: &mut [f32]) -> Result<()> {
        let all = self.exchange(values.to_vec())?;
        check_lengths(&all, values.len())?;
        values.fill(0.0);
        for buffer in all.iter() {
            values.iter_mut().zip(buffer).for_each(|(sum, v)| *sum += v);
        }
        Ok(())
    }
    fn broadcast(&mut self, values: &mut [f32], root: usize) -> Result<()> {
        let all = self.exchange(values.to_vec())?;
        check_lengths(&all, values.len())?;
        values.copy_from_slice(&all[root]);
        Ok(())
    }
    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>> {
        let all = self.exchange(local.to_vec())?;
        check_lengths(&all, local.len())?;
        Ok(all.concat())
    }
}

fn check_lengths(buffers: &[Vec<f32>], expected: usize) -> Result<()> {
    match buffers.iter().position(|buffer| buffer.len() != expected) {
        Some(rank) => bail!(
            "rank {rank} passed {} values to a collective call where this rank passed {expected}",
            buffers[rank].len()
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T: Send + 'static>(
        world: usize,
        body: impl Fn(ThreadGroup) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let body = Arc::new(body);
        let threads: Vec<_> = ThreadGroup::new(world, Duration::from_secs(20))
            .into_iter()
            .map(|member| {
                let body = Arc::clone(&body);
                std::thread::spawn(move || body(member))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn three_threads_reduce_broadcast_and_gather() {
        let results = run(3, |mut group| {
            let rank = group.rank() as f32;
            let mut summed = vec![rank, 10.0 * rank];
            group.all_reduce_sum(&mut summed).unwrap();
            let mut from_two = vec![rank; 2];
            group.broadcast(&mut from_two, 2).unwrap();
            let gathered = group.all_gather(&[rank, -rank]).unwrap();
            group.finish();
            (summed, from_two, gathered)
        });
        for (summed, from_two, gathered) in results {
            assert_eq!(summed, vec![3.0, 30.0]);
            assert_eq!(from_two, vec![2.0, 2.0]);
            assert_eq!(gathered, vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
        }
    }

    #[test]
    fn a_rank_that_leaves_releases_the_others_with_its_name() {
        let results = run(2, |mut group| {
            if group.rank() == 1 {
                return None; // dropped without finish: the thread "failed"
            }
            let mut values = vec![1.0];
            let error = group.all_reduce_sum(&mut values).unwrap_err();
            Some(format!("{error:#}"))
        });
        let message = results[0].clone().unwrap();
        assert!(message.contains("rank 1 stopped"), "{message}");
    }

    #[test]
    fn a_rank_that_never_arrives_times_out_named() {
        let mut members = ThreadGroup::new(2, Duration::from_millis(200));
        let mut late = members.pop().unwrap();
        let mut first = members.pop().unwrap();
        let message = format!("{:#}", first.all_reduce_sum(&mut [1.0]).unwrap_err());
        assert!(message.contains("ranks [1] did not reach"), "{message}");
        first.finish();
        late.finish();
    }

    #[test]
    fn different_lengths_are_refused() {
        let results = run(2, |mut group| {
            let mut values = vec![0.0; 1 + group.rank()];
            let outcome = group.all_reduce_sum(&mut values).map_err(|e| e.to_string());
            group.finish();
            outcome
        });
        assert!(results
            .iter()
            .all(|r| r.as_ref().unwrap_err().contains("values")));
    }
}
