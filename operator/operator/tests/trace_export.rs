//! `operator trace export` through the real GitHub client against the GitHub fake, on
//! loopback: runs listed day by day, their jobs page by page, a spent rate limit waited
//! out, and every exchange checked against GitHub's official REST description.

use std::{sync::Arc, time::Duration};

use contract::{Api, Contract};
use fake_github::{FakeGithub, FakeWorkflowJob, LimitStatus};
use operator::{
    config::GithubScope,
    github::{GithubClient, GithubClientSettings},
    simulate::export::export,
};
use operator_sim::{memory::InMemorySecretStore, workload::Workload};
use time::{macros::datetime, Date, Month, OffsetDateTime};

const REPO: &str = "octo-org/octo-repo";
const PAT: &str = "ghp_patvalue0000000000000000000000000002";

async fn client(fake: &FakeGithub) -> GithubClient {
    fake.add_pat(PAT);
    let mut settings = GithubClientSettings::new(fake.url(), GithubScope::Repository(REPO.into()), "token");
    settings.max_rate_limit_wait = Duration::from_secs(10);
    GithubClient::new(settings, Arc::new(InMemorySecretStore::with("token", PAT))).await.expect("client")
}

fn job(name: &str, started: OffsetDateTime, seconds: i64) -> FakeWorkflowJob {
    FakeWorkflowJob {
        name: name.into(),
        labels: vec!["self-hosted".into(), "linux".into()],
        created_at: started - time::Duration::seconds(20),
        started_at: started,
        completed_at: started + time::Duration::seconds(seconds),
    }
}

fn day(d: u8) -> Date {
    Date::from_calendar_date(2025, Month::September, d).unwrap()
}

#[tokio::test]
async fn every_job_of_every_run_in_the_days_is_exported_across_pages_and_a_rate_limit() {
    let fake = FakeGithub::start().await;
    let gh = client(&fake).await;
    // Day 1: one run with 150 jobs (two pages of jobs). Day 2: 120 runs of one job. Day 3
    // is outside the export. 122 runs: two pages of runs.
    let t1 = datetime!(2025-09-01 10:00 UTC);
    fake.add_workflow_run(
        REPO,
        t1,
        (0..150).map(|i| job(&format!("matrix {i}"), t1 + time::Duration::seconds(i), 60 + i)).collect(),
    );
    let t2 = datetime!(2025-09-02 08:00 UTC);
    for i in 0..120 {
        let at = t2 + time::Duration::minutes(i);
        fake.add_workflow_run(REPO, at, vec![job("lint", at + time::Duration::seconds(30), 45)]);
    }
    fake.add_workflow_run("octo-org/other", t2, vec![job("elsewhere", t2, 10)]);
    fake.add_workflow_run(REPO, datetime!(2025-09-03 08:00 UTC), vec![job("later", t2, 10)]);
    // A primary limit of 40 requests a second: the export's 124 requests must wait for
    // the window to reset at least three times (the client reads x-ratelimit-remaining
    // and waits before it is refused).
    fake.set_rate_limit(40, Duration::from_secs(1), LimitStatus::TooManyRequests);

    let days_done = std::sync::Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    let exported =
        export(&gh, REPO, day(1), day(2), &|d, jobs| days_done.lock().unwrap().push((d, jobs))).await.expect("export");

    assert_eq!(exported.runs, 121, "day 3's run and the other repository's are left out");
    assert_eq!(exported.unfinished, 0);
    let w = &exported.workload;
    assert_eq!(w.jobs.len(), 270);
    assert_eq!(days_done.lock().unwrap().last(), Some(&(121, 121)));
    assert_eq!(
        (w.jobs[0].name.as_str(), w.jobs[0].arrival, w.jobs[0].duration),
        ("matrix 0", t1.unix_timestamp() as f64, 60.0)
    );
    assert_eq!(w.jobs[149].duration, 209.0);
    assert!(w.jobs.iter().all(|j| j.labels == ["self-hosted", "linux"] && j.name != "later" && j.name != "elsewhere"));
    // What is written reads back as the same workload.
    assert_eq!(&Workload::from_jsonl(&w.to_jsonl()).unwrap(), w);

    let exchanges = fake.exchanges();
    assert_eq!(exchanges.len(), 124, "2 pages of runs (122, newest first), 121 + 1 pages of jobs, none refused");
    assert!(exchanges.iter().all(|e| e.status == 200));
    assert!(started.elapsed() >= Duration::from_secs(2), "the spent quota was waited out, not overrun");
    assert!(exchanges.iter().any(|e| e.path.contains("/actions/runs?") && e.path.contains("page=2")), "runs paginated");
    assert!(exchanges.iter().any(|e| e.path.contains("/jobs?") && e.path.contains("page=2")), "jobs paginated");
    let problems = Contract::load(Api::GithubRest).check_all(&exchanges);
    assert!(problems.is_empty(), "contract violations:\n{}", problems.join("\n"));
}
