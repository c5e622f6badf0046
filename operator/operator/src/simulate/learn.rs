//! The demand a trace shows, as the samples a learned mode is seeded from: at every job's
//! arrival and end, how many jobs were assigned to the pool (waiting or running), had
//! each started on arrival. Sampling at every change catches each slot's true peak, which
//! the operator itself, sampling once a reconcile pass, may see a few seconds late.

use operator_sim::workload::Workload;
use time::OffsetDateTime;

/// `(when, jobs assigned)` after every arrival and end, in time order; at equal times ends
/// go first, so a job starting as another ends does not count both.
pub fn demand_samples(workload: &Workload) -> Vec<(OffsetDateTime, u32)> {
    let mut events: Vec<(f64, i32)> =
        workload.jobs.iter().flat_map(|j| [(j.arrival, 1), (j.arrival + j.duration, -1)]).collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut demand = 0i32;
    let mut samples = Vec::with_capacity(events.len());
    for (at, delta) in events {
        demand += delta;
        let Ok(when) = OffsetDateTime::from_unix_timestamp_nanos((at * 1e9).round() as i128) else { continue };
        samples.push((when, u32::try_from(demand).unwrap_or(0)));
    }
    samples
}

#[cfg(test)]
mod tests {
    use operator_sim::workload::TraceJob;

    use super::*;

    #[test]
    fn samples_follow_every_arrival_and_end_ends_first() {
        let job = |arrival: f64, duration: f64| TraceJob { arrival, duration, labels: vec![], name: String::new() };
        // 100..110, 105..115, 110..112 (starts as the first ends).
        let w = Workload::new(vec![job(100.0, 10.0), job(105.0, 10.0), job(110.0, 2.0)]).unwrap();
        let samples: Vec<(i64, u32)> = demand_samples(&w).iter().map(|(t, d)| (t.unix_timestamp(), *d)).collect();
        assert_eq!(samples, [(100, 1), (105, 2), (110, 1), (110, 2), (112, 1), (115, 0)]);
    }
}
