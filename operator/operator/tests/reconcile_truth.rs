//! Truth from GitHub: a reconcile pass repairs what lost hooks left wrong, removes
//! ghost runners and the markers of vanished instances (docs/scaling-policy.md).

mod common;

use std::sync::Arc;

use common::{job, job_json, settings, Harness};
use operator::{
    model::{InstanceId, InstanceState, JobRef},
    ports::{Github, GithubError, JitRequest, ScaleSet},
};
use operator_sim::memory::SimJob;

const REGISTRATION: &str = "/api/v1/registration";
const STARTED: &str = "/api/v1/hooks/job-started";
const COMPLETED: &str = "/api/v1/hooks/job-completed";

fn state_of(h: &Harness, id: &str) -> Option<InstanceState> {
    h.controller.instance_states().into_iter().find(|(i, _)| i.as_str() == id).map(|(_, s)| s)
}

fn markers(h: &Harness) -> Vec<JobRef> {
    h.memory_busy.as_ref().unwrap().markers().into_iter().map(|m| m.job).collect()
}

fn corrections(h: &Harness, kind: &str) -> u64 {
    let text = h.controller.metrics().render();
    let prefix = format!("vmss_runner_corrections_total{{kind=\"{kind}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.parse().unwrap())
}

/// Instance `id` registers (JIT), its runner comes online at GitHub and takes job `run_id`.
/// Returns the runner's GitHub id.
async fn runner_takes_a_job(h: &Harness, id: &str, run_id: u64) -> u64 {
    let (status, body) = h.call(h.ip_of(id), REGISTRATION, "{}").await;
    assert_eq!(status, 200, "{body}");
    let runner = h.github.start_with_jit(body["encoded_jit_config"].as_str().unwrap()).unwrap();
    h.github.enqueue(SimJob { job: job(run_id), labels: vec!["self-hosted".into(), "linux".into()] });
    assert_eq!(h.github.poll_job(runner), Some(job(run_id)));
    runner
}

#[tokio::test]
async fn lost_job_completed_and_runner_exited_are_repaired_in_one_pass() {
    let h = Harness::new(2, settings(1, 5, 0)).await;
    let runner = runner_takes_a_job(&h, "1", 7).await;
    let (status, _) = h.call(h.ip_of("1"), STARTED, &job_json(7)).await;
    assert_eq!(status, 200);
    assert_eq!(markers(&h).len(), 1);

    // The job ends and the ephemeral runner leaves GitHub; both hooks are lost.
    h.github.finish_job(runner);
    h.controller.reconcile().await.unwrap();

    assert!(markers(&h).is_empty(), "marker removed");
    let state = state_of(&h, "1");
    assert!(matches!(state, Some(InstanceState::Reimaging | InstanceState::Deleting)), "recycled: {state:?}");
    assert_eq!(corrections(&h, "runner_gone"), 1);

    // Once the recycling has finished, a later pass finds nothing more to repair.
    h.controller.operations().close();
    h.controller.operations().wait().await;
    h.controller.reconcile().await.unwrap();
    assert!(markers(&h).is_empty());
    assert_eq!(corrections(&h, "runner_gone"), 1, "nothing twice");
}

#[tokio::test]
async fn lost_job_started_stores_a_stand_in_marker_that_the_real_job_completed_clears() {
    let h = Harness::new(2, settings(1, 5, 0)).await;
    runner_takes_a_job(&h, "1", 8).await;

    h.controller.reconcile().await.unwrap();
    let stored = markers(&h);
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].repository.as_str(), stored[0].run_id, stored[0].run_attempt), ("octo-org/octo-repo", 0, 0));
    assert!(stored[0].job_name.starts_with("unknown (job-started hook lost; runner vmsstest000001-"), "{stored:?}");
    assert_eq!(state_of(&h, "1"), Some(InstanceState::Busy));
    assert_eq!(corrections(&h, "job_started_lost"), 1);

    h.controller.reconcile().await.unwrap();
    assert_eq!(markers(&h).len(), 1, "nothing twice");

    let (status, body) = h.call(h.ip_of("1"), COMPLETED, &job_json(8)).await;
    assert_eq!(status, 200, "the real job completes the stand-in: {body}");
    assert_eq!(body["state"], "retiring");
    assert!(markers(&h).is_empty());
}

#[tokio::test]
async fn a_late_job_started_replaces_the_stand_in_with_the_real_job() {
    let h = Harness::new(2, settings(1, 5, 0)).await;
    runner_takes_a_job(&h, "1", 9).await;
    h.controller.reconcile().await.unwrap();
    assert_eq!(markers(&h)[0].run_id, 0);

    let (status, body) = h.call(h.ip_of("1"), STARTED, &job_json(9)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(markers(&h), vec![job(9)], "stand-in replaced, not added to");
    assert_eq!(h.controller.busy_set(), vec![(InstanceId::new("1"), job(9))]);
}

#[tokio::test]
async fn ghost_runners_are_deregistered_and_other_runners_left_alone() {
    let h = Harness::new(2, settings(1, 5, 0)).await;
    for name in ["vmsstest000009-abc123", "otherpool00001-abc123", "alice-laptop"] {
        let request = JitRequest { name: name.into(), labels: vec!["linux".into()], runner_group: None };
        h.github.jit_config(&request).await.unwrap();
    }

    h.controller.reconcile().await.unwrap();

    let names: Vec<String> = h.github.list_runners().await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, vec!["otherpool00001-abc123".to_owned(), "alice-laptop".to_owned()]);
    assert_eq!(corrections(&h, "ghost_deregistered"), 1);
}

#[tokio::test]
async fn the_marker_of_an_instance_deleted_while_busy_is_removed() {
    let h = Harness::new(2, settings(1, 5, 0)).await;
    runner_takes_a_job(&h, "1", 10).await;
    let (status, _) = h.call(h.ip_of("1"), STARTED, &job_json(10)).await;
    assert_eq!(status, 200);

    // Someone deletes the VM behind the operator's back.
    let scale_set: Arc<dyn ScaleSet> = h.scale_set.clone();
    scale_set.delete_instances(&[InstanceId::new("1")]).await.unwrap();
    h.controller.reconcile().await.unwrap();

    assert_eq!(state_of(&h, "1"), None);
    assert!(markers(&h).is_empty(), "orphaned marker removed");
    assert_eq!(corrections(&h, "orphan_marker_removed"), 1);
}

/// GitHub that fails to list runners on demand, otherwise the in-memory one.
struct FlakyGithub {
    inner: Arc<operator_sim::memory::InMemoryGithub>,
    fail_listing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Github for FlakyGithub {
    async fn jit_config(&self, r: &JitRequest) -> Result<operator::ports::JitConfig, GithubError> {
        self.inner.jit_config(r).await
    }
    async fn registration_token(&self) -> Result<operator::ports::RegistrationToken, GithubError> {
        self.inner.registration_token().await
    }
    async fn list_runners(&self) -> Result<Vec<operator::ports::Runner>, GithubError> {
        if self.fail_listing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(GithubError::Server { status: 502, message: "bad gateway".into() });
        }
        self.inner.list_runners().await
    }
    async fn get_runner(&self, id: u64) -> Result<Option<operator::ports::Runner>, GithubError> {
        self.inner.get_runner(id).await
    }
    async fn deregister_runner(&self, id: u64) -> Result<operator::ports::DeregisterOutcome, GithubError> {
        self.inner.deregister_runner(id).await
    }
    fn registration_url(&self) -> String {
        self.inner.registration_url()
    }
}

#[tokio::test]
async fn a_github_outage_skips_the_repair_but_not_the_pass() {
    let github = Arc::new(FlakyGithub {
        inner: Arc::new(operator_sim::memory::InMemoryGithub::new("https://github.com/o/r")),
        fail_listing: false.into(),
    });
    let ports = operator::ports::Ports {
        scale_set: common::fast_scale_set(1, 1),
        github: github.clone(),
        busy: Arc::new(operator_sim::memory::InMemoryBusyRecord::default()),
        secrets: Arc::new(operator_sim::memory::InMemorySecretStore::default()),
    };
    let controller = operator::controller::Controller::new(settings(3, 5, 0), ports);
    controller.recover().await.unwrap();
    github.fail_listing.store(true, std::sync::atomic::Ordering::SeqCst);

    controller.reconcile().await.expect("the pass goes on without GitHub");

    assert_eq!(controller.target().desired, 3, "the policy still ran");
    let text = controller.metrics().render();
    assert!(text.lines().any(|l| l == r#"vmss_runner_cloud_api_errors_total{api="github",kind="server"} 1"#), "{text}");
}

/// Instances someone protected, or named outside the scale set's prefix, are never
/// deleted or reimaged, and the pool is sized without them.
#[tokio::test(start_paused = true)]
async fn protected_and_foreign_instances_are_never_touched() {
    let scale_set = common::fast_scale_set(3, 1);
    scale_set.protect(&InstanceId::new("0"));
    let mut s = settings(1, 4, 0);
    s.computer_name_prefix = Some("vmsstest".into());
    let busy = Arc::new(operator_sim::memory::InMemoryBusyRecord::default());
    let github = Arc::new(operator_sim::memory::InMemoryGithub::new("https://github.com/o/r"));
    let h = Harness::with_parts(scale_set.clone(), github, busy, s).await;
    h.controller.recover().await.unwrap();

    // Nobody registers: instances 1 and 2 go when the registration timeout passes; 0 stays.
    tokio::time::advance(std::time::Duration::from_secs(601)).await;
    h.controller.reconcile().await.unwrap();
    h.controller.operations().close();
    h.controller.operations().wait().await;
    let writes = scale_set.writes();
    assert!(!writes.deleted_ids.contains(&InstanceId::new("0")), "{writes:?}");
    assert!(!writes.reimaged_ids.contains(&InstanceId::new("0")), "{writes:?}");
    assert_eq!(writes.deleted_ids.len(), 2, "{writes:?}");
    // Replacement first: min 1 of our own, plus the 2 about to go, plus the protected one.
    assert_eq!(writes.set_capacity, 1);
    assert_eq!(scale_set.capacity().await.unwrap(), 2, "the protected instance and one replacement");
}

#[tokio::test]
async fn an_instance_named_outside_the_prefix_is_not_part_of_the_pool() {
    let mut s = settings(1, 4, 0);
    s.computer_name_prefix = Some("otherpool".into());
    let h = Harness::new(2, s).await;
    assert_eq!(h.controller.instance_states().len(), 2, "listed");
    h.controller.reconcile().await.unwrap();
    let target = h.controller.target();
    assert_eq!((target.size, target.busy), (0, 0), "none of them counts: {target:?}");
    // The pool of our own is empty, so min is restored on top of the foreign ones.
    assert_eq!(h.scale_set.capacity().await.unwrap(), 3);
}

/// A queue write whose answer was lost leaves a marker nobody tracks: the audit
/// removes it on its second sighting, and refreshes the handles of tracked markers
/// (reading the queue hands out new pop receipts) so hooks can still remove them.
#[tokio::test(start_paused = true)]
async fn the_busy_record_audit_removes_untracked_markers_and_keeps_tracked_ones_usable() {
    use operator::ports::BusyMarker;
    let h = Harness::new(2, settings(1, 5, 0)).await;
    runner_takes_a_job(&h, "1", 7).await;
    let (status, _) = h.call(h.ip_of("1"), STARTED, &job_json(7)).await;
    assert_eq!(status, 200);
    // The lost write: stored at the queue, never known to the operator.
    let lost = BusyMarker::new(InstanceId::new("0"), "vmsstest000000".into(), job(99), time::OffsetDateTime::now_utc());
    h.busy.put(&lost).await.unwrap();
    assert_eq!(markers(&h).len(), 2);

    // Recovery has just read the record, so the first audit is one audit period later.
    let audit_period = std::time::Duration::from_secs(601);
    tokio::time::advance(audit_period).await;
    h.controller.reconcile().await.unwrap(); // first audit: a suspect only
    assert_eq!(markers(&h).len(), 2, "never removed on first sight");
    tokio::time::advance(audit_period).await;
    h.controller.reconcile().await.unwrap();
    assert_eq!(markers(&h), vec![job(7)], "the untracked marker went, the tracked one stayed");
    assert_eq!(corrections(&h, "untracked_marker_removed"), 1);

    // The tracked marker's handle was refreshed by the audit's read: job-completed removes it.
    let (status, body) = h.call(h.ip_of("1"), COMPLETED, &job_json(7)).await;
    assert_eq!(status, 200, "{body}");
    assert!(markers(&h).is_empty());
}
