//! A workload trace as demand samples, to seed a model that has no stored state yet:
//! the jobs queued or running at each 30-second step, as the reconcile pass would have
//! sampled them. A trace records when each job asked for a runner and how long it ran,
//! not how long it waited, so a job counts from its arrival for its duration.

use std::time::Duration;

use operator_sim::workload::Workload;
use time::OffsetDateTime;

/// The step between samples: the reconcile period's default.
pub const STEP: Duration = Duration::from_secs(30);

/// `(time, jobs in flight)` every [`STEP`] from a step before the first arrival to the last end.
pub fn demand_samples(workload: &Workload) -> Vec<(OffsetDateTime, u32)> {
    let Some(first) = workload.jobs.first() else { return Vec::new() };
    // A workload's jobs are in arrival order (`Workload::new`); their ends are not.
    let arrivals: Vec<f64> = workload.jobs.iter().map(|j| j.arrival).collect();
    let mut ends: Vec<f64> = workload.jobs.iter().map(|j| j.arrival + j.duration).collect();
    ends.sort_by(f64::total_cmp);
    let last = ends.last().copied().unwrap_or(first.arrival);
    let step = STEP.as_secs_f64();
    // One step before the first arrival, when nothing was in flight yet: a burst at the
    // trace's start is then a rise from zero, as the operator would have seen it.
    let start = (first.arrival / step).floor() * step - step;
    let (mut arrived, mut ended) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut t = start;
    while t <= last + step {
        while arrived < arrivals.len() && arrivals[arrived] <= t {
            arrived += 1;
        }
        while ended < ends.len() && ends[ended] <= t {
            ended += 1;
        }
        if let Ok(at) = OffsetDateTime::from_unix_timestamp(t as i64) {
            out.push((at, u32::try_from(arrived - ended).unwrap_or(u32::MAX)));
        }
        t += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use operator_sim::workload::TraceJob;

    use super::*;

    fn job(arrival: f64, duration: f64) -> TraceJob {
        TraceJob { arrival, duration, labels: vec![], name: String::new() }
    }

    #[test]
    fn each_step_counts_the_jobs_that_arrived_and_have_not_ended() {
        // Two jobs of 60 s at 1,000,020 (a step boundary), one of 200 s 30 s later.
        let workload = Workload::new(vec![job(1_000_020.0, 60.0), job(1_000_020.0, 60.0), job(1_000_050.0, 200.0)])
            .expect("a workload");
        let samples: Vec<(i64, u32)> =
            demand_samples(&workload).into_iter().map(|(at, n)| (at.unix_timestamp(), n)).collect();
        assert_eq!(
            samples,
            [
                (999_990, 0),
                (1_000_020, 2),
                (1_000_050, 3),
                (1_000_080, 1),
                (1_000_110, 1),
                (1_000_140, 1),
                (1_000_170, 1),
                (1_000_200, 1),
                (1_000_230, 1),
                (1_000_260, 0),
            ]
        );
    }

    #[test]
    fn an_empty_trace_gives_no_samples() {
        assert!(demand_samples(&Workload::default()).is_empty());
    }
}
