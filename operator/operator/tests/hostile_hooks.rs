//! A job on a runner VM is untrusted: it can send its own instance's hooks early. The
//! protection holds (GitHub refuses to remove a busy runner), and it must not cost a
//! GitHub request a second for the length of the job (issue 11).

mod common;

use std::time::Duration;

use common::{job, job_json, settings, Harness};
use operator::controller::Settings;
use operator_sim::memory::SimJob;

const REGISTRATION: &str = "/api/v1/registration";
const STARTED: &str = "/api/v1/hooks/job-started";
const COMPLETED: &str = "/api/v1/hooks/job-completed";
const EXITED: &str = "/api/v1/hooks/runner-exited";
const PERIOD: Duration = Duration::from_secs(30);

fn refused_busy(h: &Harness) -> u64 {
    let text = h.controller.metrics().render();
    let line = r#"vmss_runner_scale_operations_total{kind="deregister",outcome="refused_busy"} "#;
    text.lines().find_map(|l| l.strip_prefix(line)).map_or(0, |v| v.parse().unwrap())
}

/// Instance "1" registers, its runner takes job 7 and job-started is recorded; returns
/// the runner's id.
async fn instance_one_runs_job_7(h: &Harness) -> u64 {
    let (status, body) = h.call(h.ip_of("1"), REGISTRATION, "{}").await;
    assert_eq!(status, 200, "{body}");
    let runner = h.github.start_with_jit(body["encoded_jit_config"].as_str().unwrap()).unwrap();
    h.github.enqueue(SimJob { job: job(7), labels: vec!["self-hosted".into(), "linux".into()] });
    assert_eq!(h.github.poll_job(runner), Some(job(7)));
    assert_eq!(h.call(h.ip_of("1"), STARTED, &job_json(7)).await.0, 200);
    runner
}

/// Instance "1" runs job 7 at GitHub, then its job reports job-completed and
/// runner-exited while it goes on running.
async fn a_job_that_claims_to_be_over(h: &Harness) {
    instance_one_runs_job_7(h).await;
    assert_eq!(h.call(h.ip_of("1"), COMPLETED, &job_json(7)).await.0, 200);
    assert_eq!(h.call(h.ip_of("1"), EXITED, "{}").await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn an_early_runner_exited_costs_one_github_call_per_backoff_not_one_per_second() {
    let h = Harness::new(2, Settings { period: PERIOD, ..settings(1, 5, 0) }).await;
    a_job_that_claims_to_be_over(&h).await;

    let action = h.controller.reconcile().await.unwrap();
    assert_eq!(refused_busy(&h), 1, "GitHub was asked once and refused: the runner is busy");
    assert!(
        action.requeue_after >= PERIOD,
        "a refused instance does not hurry the next pass: {:?}",
        action.requeue_after
    );
    let busy_vm_touched = h.scale_set.writes().reimaged_ids.len() + h.scale_set.writes().deleted_ids.len();
    assert_eq!(busy_vm_touched, 0);

    // Hooks and passes in quick succession (what a nudge or the old 1 s requeue made) ask nothing.
    for _ in 0..20 {
        tokio::time::advance(Duration::from_secs(1)).await;
        h.controller.reconcile().await.unwrap();
    }
    assert_eq!(refused_busy(&h), 1, "no second call within the first period");

    // Then one call per growing wait: after 30 s, then 60 s later.
    tokio::time::advance(PERIOD).await;
    h.controller.reconcile().await.unwrap();
    assert_eq!(refused_busy(&h), 2);
    tokio::time::advance(PERIOD).await;
    h.controller.reconcile().await.unwrap();
    assert_eq!(refused_busy(&h), 2, "the second wait is two periods");
    tokio::time::advance(PERIOD).await;
    h.controller.reconcile().await.unwrap();
    assert_eq!(refused_busy(&h), 3);
    let writes = h.scale_set.writes();
    assert_eq!(writes.reimaged_ids.len() + writes.deleted_ids.len(), 0, "the busy VM was never touched");
}

#[tokio::test(start_paused = true)]
async fn runner_exited_does_not_end_a_busy_record_while_github_shows_the_runner_busy() {
    let h = Harness::new(2, Settings { period: PERIOD, ..settings(1, 5, 0) }).await;
    let runner = instance_one_runs_job_7(&h).await;
    // A pass lists GitHub's runners: this one is running job 7.
    h.controller.reconcile().await.unwrap();

    // The job itself reports its runner gone.
    let (status, body) = h.call(h.ip_of("1"), EXITED, "{}").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "runner_busy_at_github", "{body}");
    assert_eq!(h.controller.busy_set().len(), 1, "still busy: GitHub says so");
    assert_eq!(refused_busy(&h), 0, "nothing to deregister, so nothing asked");

    // The job really ends: GitHub's next listing settles the record, and the VM goes.
    h.github.finish_job(runner);
    tokio::time::advance(PERIOD).await;
    h.controller.reconcile().await.unwrap();
    assert!(h.controller.busy_set().is_empty(), "the listing ended the job");
    tokio::time::advance(PERIOD).await;
    h.controller.reconcile().await.unwrap();
    let writes = h.scale_set.writes();
    assert_eq!(
        writes.reimaged_ids.len() + writes.deleted_ids.len(),
        1,
        "recycled once the runner was gone: {writes:?}"
    );
}
