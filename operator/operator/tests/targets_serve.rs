//! Targets that follow the clock in the served operator, with its real clients against
//! the fake scale set, Key Vault, GitHub and Azurite (queue and blob):
//!
//! - a `pool.schedules` entry raises the running floor at the right minute in the right
//!   time zone, on the day Europe/Berlin springs forward (02:00 CET becomes 03:00 CEST,
//!   i.e. 01:00 UTC);
//! - `pool.learned` sizes the pool from the model in its blob, and what the operator
//!   learned survives a restart.
//!
//! The operator's wall clock is set to a chosen moment and runs at real speed; everything
//! else is as served.

mod common;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use common::on_fakes::{self, FakesConfig, OperatorOnFakes};
use contract::{Api, Contract};
use fake_azure::{ArmSettings, FakeAzure, IdentitySettings, ScaleSetSpec};
use fake_github::FakeGithub;
use operator::{
    config::LearnedConfig,
    controller::WallClock,
    learned::{LearnedState, StateBlob},
    queue::QueueBusyRecord,
};
use test_support::Azurite;
use time::{macros::datetime, OffsetDateTime};

const REPO: &str = "octo-org/octo-repo";
const VMSS: &str = "vmss-runners";

struct Fakes {
    azure: Arc<FakeAzure>,
    github: Arc<FakeGithub>,
    azurite: Azurite,
    fakes: FakesConfig,
}

/// An empty scale set and the other fakes; the pool's base floor is 1.
async fn fakes(ip_block: u8, queue: &str, max: u32) -> Fakes {
    let azure = Arc::new(FakeAzure::start_with(IdentitySettings::default(), ArmSettings::default()).await);
    let vmss_id = azure.arm.add_scale_set(ScaleSetSpec {
        ip_block,
        computer_name_prefix: "vmssrun".into(),
        ..ScaleSetSpec::uniform(VMSS, 0)
    });
    let github = Arc::new(FakeGithub::start().await);
    github.add_pat("ghp_targets_1");
    azure.key_vault.set_secret(on_fakes::CREDENTIAL_SECRET, "ghp_targets_1");
    let azurite = Azurite::start();
    let queue_url = azurite.queue_url(queue);
    QueueBusyRecord::new(&queue_url, None).unwrap().ensure_queue().await.unwrap();
    let fakes = FakesConfig {
        vmss_id,
        queue_url,
        scope_lines: format!("scope = {{ repository = \"{REPO}\" }}"),
        credential_extra: String::new(),
        jit: true,
        demand: "none",
        min: 1,
        max,
        pct: 0,
    };
    Fakes { azure, github, azurite, fakes }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_raises_the_floor_at_three_in_berlin_on_the_night_the_clocks_spring_forward() {
    let Fakes { azure, github, azurite: _azurite, fakes } = fakes(41, "schedule-serve", 6).await;
    // From 03:00 to 05:59 Berlin time, three VMs run and two wait parked.
    let toml = on_fakes::config_toml(&azure, &github, &fakes).replace(
        "[reconcile]",
        "[[pool.schedules]]\ncron = \"* 3-5 * * *\"\ntimezone = \"Europe/Berlin\"\nmin = 3\nparked = 2\n\n[reconcile]",
    );
    // 00:59:55 UTC on 29 March 2026 is 01:59:55 CET: five seconds before 03:00 CEST.
    let lead = Duration::from_secs(5);
    let started = Instant::now();
    let clock = WallClock::Simulated { origin: tokio::time::Instant::now(), at: datetime!(2026-03-29 00:59:55 UTC) };
    let OperatorOnFakes { controller, shutdown, server, .. } =
        on_fakes::start_adjusted(&azure, &toml, SocketAddr::from(([127, 0, 0, 1], 0)), |s| s.targeting.clock = clock)
            .await;

    // Before the minute: the base floor of one.
    let base = wait_for(Duration::from_secs(4), || azure.arm.capacity(VMSS) >= 1).await;
    assert!(base, "the base floor of one is set first");
    assert!(started.elapsed() < lead, "test setup too slow to see the minute before");
    assert_eq!(azure.arm.capacity(VMSS), 1, "01:59 CET: no entry matches");

    // At 03:00 CEST (01:00 UTC) the entry matches: 3 running + 2 parked.
    let raised = wait_for(lead + Duration::from_secs(5), || azure.arm.capacity(VMSS) >= 5).await;
    let at = started.elapsed();
    assert!(raised, "the floor was not raised: capacity {}", azure.arm.capacity(VMSS));
    assert!(at >= lead, "raised {at:?} after start: before 03:00 in Berlin");
    assert!(at < lead + Duration::from_secs(2), "raised {at:?} after start: not within the minute's first seconds");
    let metrics = controller.metrics().render();
    assert!(metrics.contains("vmss_runner_target_min_instances 3"), "{metrics}");
    assert!(metrics.contains("vmss_runner_target_parked_instances 2"), "{metrics}");

    shutdown.cancel();
    let _ = server.await;
    let problems = Contract::load(Api::Compute).check_all(&azure.arm.exchanges());
    assert!(problems.is_empty(), "contract violations:\n{}", problems.join("\n"));
}

/// A week of 30-s samples: 4 jobs every Tuesday 10:00-11:00 UTC, none otherwise.
fn learn_a_week(state: &LearnedState, monday: OffsetDateTime) {
    for step in 0..7 * 24 * 120 {
        let at = monday + time::Duration::seconds(30 * step);
        let busy = at.weekday() == time::Weekday::Tuesday && at.hour() == 10;
        state.observe(at, if busy { 4 } else { 0 });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learned_mode_sizes_the_served_pool_from_its_blob_and_what_it_learns_survives_a_restart() {
    let Fakes { azure, github, azurite: _queue, fakes } = fakes(42, "learned-serve", 8).await;
    let azurite = Azurite::start_blob();
    let state_url = azurite.blob_url("operator-state", "learned-demand.json");
    let blob = StateBlob::new(&state_url, None).unwrap();
    blob.ensure_container().await.unwrap();
    // Two weeks of history, as an earlier operator would have left them.
    let (earlier, _) = LearnedState::open(&LearnedConfig::new(state_url.clone()), None).await.unwrap();
    learn_a_week(&earlier, datetime!(2026-11-16 00:00 UTC));
    learn_a_week(&earlier, datetime!(2026-11-23 00:00 UTC));
    earlier.save().await.unwrap();
    let stored = blob.read().await.unwrap().expect("saved").etag;

    let toml = on_fakes::config_toml(&azure, &github, &fakes)
        .replace("[reconcile]", &format!("[pool.learned]\nstate_url = \"{state_url}\"\n\n[reconcile]"));
    // Tuesday 1 December 2026, 10:00 UTC: the learned busy hour.
    let at_ten = WallClock::Simulated { origin: tokio::time::Instant::now(), at: datetime!(2026-12-01 10:00 UTC) };
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let first = on_fakes::start_adjusted(&azure, &toml, listen, |s| s.targeting.clock = at_ten).await;
    let sized = wait_for(Duration::from_secs(10), || azure.arm.capacity(VMSS) >= 4).await;
    assert!(sized, "the learned burst of 4 sizes the pool: capacity {}", azure.arm.capacity(VMSS));
    // Nothing warm by default, the burst parked behind the configured min of 1.
    let rendered = first.controller.metrics().render();
    assert!(rendered.contains("vmss_runner_target_min_instances 1"), "{rendered}");
    assert!(rendered.contains("vmss_runner_target_parked_instances 3"), "{rendered}");
    // Shut down: the saver writes what this process observed.
    first.shutdown.cancel();
    let _ = first.server.await;
    let saved = blob.read().await.unwrap().expect("still there");
    assert_ne!(saved.etag, stored, "the shutdown saved the state");

    // What was saved, including this process's own observations (no job ran at 10:00 this
    // week: no burst), as a model read straight from the blob.
    let (saved_model, _) = LearnedState::open(&LearnedConfig::new(state_url.clone()), None).await.unwrap();
    let base = operator::targets::Targets { min: 1, parked: 0, free_target_percentage: 0 };
    let expected = saved_model.targets_at(datetime!(2026-12-08 09:50 UTC), base, 8);
    assert!(expected.min + expected.parked >= 4, "the learned burst is in the saved model: {expected:?}");

    // A new process a week later at 09:50 (the model's 15-minute lead reaches into the
    // busy hour) loads it and sizes the pool by it.
    let at_ten_to = WallClock::Simulated { origin: tokio::time::Instant::now(), at: datetime!(2026-12-08 09:50 UTC) };
    let second = on_fakes::start_adjusted(&azure, &toml, listen, |s| s.targeting.clock = at_ten_to).await;
    let metrics = || second.controller.metrics().render();
    let wanted = [
        format!("vmss_runner_target_min_instances {}", expected.min),
        format!("vmss_runner_target_parked_instances {}", expected.parked),
    ];
    let sized = wait_for(Duration::from_secs(10), || wanted.iter().all(|w| metrics().contains(w.as_str()))).await;
    assert!(
        sized,
        "after the restart the saved model sizes the pool ({expected:?}; an empty one would say min 1, parked 0):\n{}",
        metrics()
    );
    second.shutdown.cancel();
    let _ = second.server.await;
    let problems = Contract::load(Api::Compute).check_all(&azure.arm.exchanges());
    assert!(problems.is_empty(), "contract violations:\n{}", problems.join("\n"));
}

async fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}
