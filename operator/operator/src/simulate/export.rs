//! `operator trace export`: a repository's workflow job history, through the operator's
//! own GitHub client (`crate::github`: pagination by `Link`, conditional requests,
//! waiting out rate limits), as a workload in the JSONL format of `docs/simulate.md`.
//! Runs are listed newest first until the listing reaches back before `--since` (an
//! unfiltered listing: a filtered one is capped at 1,000 runs), then each run's jobs. A job's arrival is its `started_at` and its duration
//! `completed_at - started_at`, as in the bitcoin trace; jobs that never started or
//! never completed are left out and counted.

use operator_sim::workload::{TraceJob, Workload};
use time::Date;

use crate::{github::GithubClient, ports::GithubError};

/// What an export found.
#[derive(Debug)]
pub struct Exported {
    pub workload: Workload,
    pub runs: usize,
    /// Jobs left out: not started or not completed.
    pub unfinished: usize,
}

/// Every job of `repository`'s workflow runs created from `since` to `until` (whole
/// UTC days, inclusive); `progress` hears (runs done, runs) after each run.
pub async fn export(
    client: &GithubClient,
    repository: &str,
    since: Date,
    until: Date,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Exported, GithubError> {
    let start = since.midnight().assume_utc();
    let end = until.next_day().map_or(time::OffsetDateTime::now_utc(), |d| d.midnight().assume_utc());
    let mut runs = client.workflow_runs_since(repository, start).await?;
    runs.retain(|(_, created)| *created < end);
    // Oldest first, so the progress reads forward in time.
    runs.reverse();
    let (mut jobs, mut unfinished) = (Vec::new(), 0);
    for (done, (id, _)) in runs.iter().enumerate() {
        for job in client.workflow_jobs(repository, *id).await? {
            match (job.started_at, job.completed_at) {
                (Some(start), Some(end)) if end >= start => jobs.push(TraceJob {
                    arrival: start.unix_timestamp() as f64,
                    duration: (end - start).as_seconds_f64(),
                    labels: job.labels,
                    name: job.name,
                }),
                _ => unfinished += 1,
            }
        }
        progress(done + 1, runs.len());
    }
    let workload = Workload::new(jobs).map_err(|e| GithubError::Server { status: 200, message: e.to_string() })?;
    Ok(Exported { workload, runs: runs.len(), unfinished })
}
