//! `pool.schedules` in the served operator, with its real clients against the fake
//! scale set, Key Vault, GitHub and Azurite: a schedule entry raises the running floor at
//! the right minute in the right time zone, on the day Europe/Berlin springs forward
//! (02:00 CET becomes 03:00 CEST, i.e. 01:00 UTC). The operator's wall clock is set a
//! few seconds before that moment and runs at real speed; everything else is as served.

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
use operator::{controller::WallClock, queue::QueueBusyRecord};
use test_support::Azurite;
use time::macros::datetime;

const REPO: &str = "octo-org/octo-repo";
const VMSS: &str = "vmss-runners";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_raises_the_floor_at_three_in_berlin_on_the_night_the_clocks_spring_forward() {
    let azure = Arc::new(FakeAzure::start_with(IdentitySettings::default(), ArmSettings::default()).await);
    let vmss_id = azure.arm.add_scale_set(ScaleSetSpec {
        ip_block: 41,
        computer_name_prefix: "vmssrun".into(),
        ..ScaleSetSpec::uniform(VMSS, 0)
    });
    let github = Arc::new(FakeGithub::start().await);
    github.add_pat("ghp_schedule_1");
    azure.key_vault.set_secret(on_fakes::CREDENTIAL_SECRET, "ghp_schedule_1");
    let azurite = Azurite::start();
    let queue_url = azurite.queue_url("schedule-serve");
    QueueBusyRecord::new(&queue_url, None).unwrap().ensure_queue().await.unwrap();
    let fakes = FakesConfig {
        vmss_id,
        queue_url,
        scope_lines: format!("scope = {{ repository = \"{REPO}\" }}"),
        credential_extra: String::new(),
        jit: true,
        demand: "none",
        min: 1,
        max: 6,
        pct: 0,
    };
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
