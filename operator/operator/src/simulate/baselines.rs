//! What other pools would have done with the same jobs, computed directly (no
//! operator, no clock): a static pool of N warm VMs, one fresh VM per job, and the
//! clairvoyant zero-wait lower bound. `docs/simulate.md` explains each, and why the
//! bound is one.
//!
//! Times are seconds from the first arrival; a job is `(arrival, duration)`.

use std::{cmp::Reverse, collections::BinaryHeap};

/// Waits, VM time and busy time of one baseline, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    pub waits: Vec<f64>,
    pub vm_time: f64,
    pub busy_time: f64,
}

impl Baseline {
    pub fn idle_time(&self) -> f64 {
        (self.vm_time - self.busy_time).max(0.0)
    }
}

fn busy(jobs: &[(f64, f64)]) -> f64 {
    jobs.iter().map(|j| j.1).sum()
}

/// `n` VMs, running from the first arrival until the last job ends. Jobs take the VM
/// free soonest, first come first served; an ephemeral runner's VM is reimaged after
/// each job (`reimage` seconds) before it takes the next.
pub fn static_pool(jobs: &[(f64, f64)], n: usize, reimage: f64) -> Baseline {
    assert!(n > 0, "a static pool has at least one VM");
    // Free-at times as ordered integers (milliseconds), so equal times break ties
    // deterministically.
    let mut free: BinaryHeap<Reverse<u64>> = (0..n).map(|_| Reverse(0)).collect();
    let (mut waits, mut last_end) = (Vec::with_capacity(jobs.len()), 0.0f64);
    for &(arrival, duration) in jobs {
        let Reverse(at) = free.pop().expect("n > 0 VMs");
        let start = arrival.max(at as f64 / 1000.0);
        waits.push(start - arrival);
        last_end = last_end.max(start + duration);
        free.push(Reverse(((start + duration + reimage) * 1000.0).round() as u64));
    }
    Baseline { waits, vm_time: n as f64 * last_end, busy_time: busy(jobs) }
}

/// The smallest static pool whose p95 wait is at most `p95` seconds, with its outcome.
pub fn smallest_static_pool(jobs: &[(f64, f64)], p95: f64, reimage: f64) -> (usize, Baseline) {
    let p95_of = |b: &Baseline| quantile(&b.waits, 0.95);
    let (mut low, mut high) = (1usize, 1usize);
    // Grow until it meets the target (more VMs never make a FIFO job wait longer).
    loop {
        let b = static_pool(jobs, high, reimage);
        if p95_of(&b) <= p95 + 1e-9 || high >= jobs.len().max(1) {
            break;
        }
        low = high + 1;
        high *= 2;
    }
    while low < high {
        let mid = (low + high) / 2;
        if p95_of(&static_pool(jobs, mid, reimage)) <= p95 + 1e-9 {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    (high, static_pool(jobs, high, reimage))
}

/// One fresh VM per job, created when the job arrives and deleted when it ends: every
/// job waits one boot, and every VM idles exactly its boot.
pub fn per_job(jobs: &[(f64, f64)], boot: f64) -> Baseline {
    Baseline { waits: vec![boot; jobs.len()], vm_time: jobs.iter().map(|j| boot + j.1).sum(), busy_time: busy(jobs) }
}

/// The clairvoyant zero-wait lower bound on idle VM time. It knows every arrival, so
/// every job finds a VM ready: either a fresh one, booted `boot` seconds ahead (idle
/// `boot`), or one whose previous job ended at least `reimage` seconds before (idle:
/// the gap, reimage included). Ski rental: reuse when the gap is shorter than a boot.
/// Jobs in arrival order take the finished VM with the shortest eligible gap (best
/// fit); a test checks this against every assignment on small cases.
pub fn clairvoyant(jobs: &[(f64, f64)], boot: f64, reimage: f64) -> Baseline {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| jobs[a].0.total_cmp(&jobs[b].0));
    // End times of finished VMs that may be reused, as sorted milliseconds.
    let ms = |s: f64| (s * 1000.0).round() as i64;
    let mut ends: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
    let mut idle = 0.0;
    let mut reimaging: Vec<(f64, i64)> = Vec::new(); // finished VMs still inside their reimage window
    for &j in &order {
        let (arrival, duration) = jobs[j];
        // The latest end that still leaves a reimage before this arrival.
        let latest = ms(arrival - reimage);
        reimaging.retain(|&(_, end)| {
            if end <= latest {
                *ends.entry(end).or_default() += 1;
                false
            } else {
                true
            }
        });
        // Forget VMs idle a boot or longer: a fresh boot would have cost no more.
        let oldest = ms(arrival - boot);
        let stale: Vec<i64> = ends.range(..=oldest).map(|(e, _)| *e).collect();
        for e in stale {
            ends.remove(&e);
        }
        match ends.range(..=latest).next_back().map(|(e, _)| *e) {
            Some(end) => {
                idle += arrival - end as f64 / 1000.0;
                let left = ends.get_mut(&end).expect("just found");
                *left -= 1;
                if *left == 0 {
                    ends.remove(&end);
                }
            }
            None => idle += boot,
        }
        reimaging.push((arrival, ms(arrival + duration)));
    }
    let busy_time = busy(jobs);
    Baseline { waits: vec![0.0; jobs.len()], vm_time: busy_time + idle, busy_time }
}

/// Nearest-rank quantile of seconds; zero when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every zero-wait schedule: each job either boots fresh or follows one earlier
    /// job (at most one follower each) whose end leaves a reimage before it.
    fn exhaustive_bound(jobs: &[(f64, f64)], boot: f64, reimage: f64) -> f64 {
        fn go(jobs: &[(f64, f64)], j: usize, used: &mut Vec<bool>, boot: f64, reimage: f64) -> f64 {
            if j == jobs.len() {
                return 0.0;
            }
            let mut best = boot + go(jobs, j + 1, used, boot, reimage);
            for i in 0..jobs.len() {
                let end = jobs[i].0 + jobs[i].1;
                let gap = jobs[j].0 - end;
                if i != j && !used[i] && gap >= reimage {
                    used[i] = true;
                    best = best.min(gap + go(jobs, j + 1, used, boot, reimage));
                    used[i] = false;
                }
            }
            best
        }
        go(jobs, 0, &mut vec![false; jobs.len()], boot, reimage)
    }

    #[test]
    fn the_clairvoyant_bound_equals_the_best_of_every_schedule_on_small_cases() {
        let mut rng = operator_sim::SplitMix(42);
        for case in 0..300 {
            let n = 1 + (case % 7) as usize;
            let jobs: Vec<(f64, f64)> = (0..n).map(|_| (rng.range(0, 600) as f64, rng.range(10, 300) as f64)).collect();
            let (boot, reimage) = (rng.range(30, 200) as f64, rng.range(0, 100) as f64);
            let fast = clairvoyant(&jobs, boot, reimage).idle_time();
            let exact = exhaustive_bound(&jobs, boot, reimage);
            assert!(
                (fast - exact).abs() < 1e-6,
                "case {case}: {jobs:?} boot {boot} reimage {reimage}: {fast} != {exact}"
            );
        }
    }

    #[test]
    fn a_job_that_arrives_soon_after_another_ends_reuses_its_vm() {
        // Boot 90, reimage 60. Job 2 arrives 70 s after job 1 ends: reuse (idle 70)
        // beats a fresh boot (90). Job 3 arrives 200 s after job 2 ends: fresh.
        let jobs = [(0.0, 100.0), (170.0, 50.0), (420.0, 10.0)];
        let b = clairvoyant(&jobs, 90.0, 60.0);
        assert_eq!(b.idle_time(), 90.0 + 70.0 + 90.0);
        assert_eq!(b.waits, [0.0; 3]);
        // 50 s after is too soon to reimage: fresh.
        assert_eq!(clairvoyant(&[(0.0, 100.0), (150.0, 10.0)], 90.0, 60.0).idle_time(), 180.0);
    }

    #[test]
    fn a_static_pool_queues_jobs_behind_reimages() {
        // One VM, reimage 60: job 2 arrives at 10 while job 1 runs until 100, then
        // waits for the reimage too (start 160, wait 150).
        let b = static_pool(&[(0.0, 100.0), (10.0, 20.0)], 1, 60.0);
        assert_eq!(b.waits, [0.0, 150.0]);
        assert_eq!((b.vm_time, b.busy_time), (180.0, 120.0));
        let (n, two) = smallest_static_pool(&[(0.0, 100.0), (10.0, 20.0)], 0.0, 60.0);
        assert_eq!((n, two.waits.clone()), (2, vec![0.0, 0.0]));
    }

    #[test]
    fn one_fresh_vm_per_job_waits_and_idles_one_boot_each() {
        let b = per_job(&[(0.0, 100.0), (10.0, 20.0)], 90.0);
        assert_eq!(b.waits, [90.0, 90.0]);
        assert_eq!(b.idle_time(), 180.0);
    }

    #[test]
    fn the_bound_is_never_above_one_vm_per_job_nor_a_zero_wait_static_pool() {
        let mut rng = operator_sim::SplitMix(7);
        let jobs: Vec<(f64, f64)> = {
            let mut t = 0.0;
            (0..400)
                .map(|_| {
                    t += rng.range(0, 120) as f64;
                    (t, rng.range(30, 1800) as f64)
                })
                .collect()
        };
        let bound = clairvoyant(&jobs, 90.0, 60.0).idle_time();
        assert!(bound <= per_job(&jobs, 90.0).idle_time());
        let (_, zero_wait) = smallest_static_pool(&jobs, 0.0, 60.0);
        assert!(bound <= zero_wait.idle_time(), "{bound} > {}", zero_wait.idle_time());
    }
}
