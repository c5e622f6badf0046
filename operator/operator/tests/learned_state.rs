//! The learned demand state against a real blob service (Azurite): it survives a
//! restart, a second writer is detected by its ETag and merged rather than
//! overwritten, a missing blob is seeded from a trace, and a blob that is not a
//! snapshot stops the operator with the blob's URL and no SAS.

use operator::{
    config::LearnedConfig,
    learned::{Expect, LearnedError, LearnedState, Origin, StateBlob, WriteRefused},
    report::Chain,
    targets::Targets,
};
use test_support::Azurite;
use time::{macros::datetime, Duration, OffsetDateTime};
use tokio_util::sync::CancellationToken;

const BASE: Targets = Targets { min: 0, parked: 0, free_target_percentage: 20 };
/// Tuesday 13 January 2026, 10:00 UTC.
const TUESDAY_TEN: OffsetDateTime = datetime!(2026-01-13 10:00 UTC);

/// A blob of its own in the `operator-state` container, which is created here (in
/// production Terraform creates it).
async fn config(azurite: &Azurite, blob: &str) -> LearnedConfig {
    let config = LearnedConfig::new(azurite.blob_url("operator-state", blob));
    StateBlob::new(&config.state_url, None).unwrap().ensure_container().await.unwrap();
    config
}

async fn open(config: &LearnedConfig) -> (LearnedState, Origin) {
    LearnedState::open(config, None).await.expect("the learned state opens")
}

/// A week of 30-s samples: `peak` jobs on Tuesday 10:00-11:00 (a burst of `peak` at
/// 10:00), none otherwise.
fn learn_a_week(state: &LearnedState, monday: OffsetDateTime, peak: u32) {
    for step in 0..7 * 24 * 120 {
        let at = monday + Duration::seconds(30 * step);
        let busy = at.weekday() == time::Weekday::Tuesday && at.hour() == 10;
        state.observe(at, if busy { peak } else { 0 });
    }
}

/// Demand rising from none to `jobs` within 30 s at `at`: a burst of `jobs`.
fn burst(state: &LearnedState, at: OffsetDateTime, jobs: u32) {
    state.observe(at - Duration::seconds(30), 0);
    state.observe(at, jobs);
}

#[tokio::test]
async fn the_learned_state_survives_a_restart() {
    let azurite = Azurite::start_blob();
    let config = config(&azurite, "restart.json").await;
    let (first, origin) = open(&config).await;
    assert_eq!(origin, Origin::Empty);
    for week in 0..3 {
        learn_a_week(&first, datetime!(2026-01-05 00:00 UTC) + Duration::weeks(week), 6);
    }
    first.save().await.expect("saved");
    let learned = first.targets_at(TUESDAY_TEN + Duration::weeks(3), BASE, 40);
    assert_eq!(learned, Targets { parked: 6, ..BASE }, "the defaults park the burst, none warm");

    // A new process: a new client, the model read back from the blob.
    let (second, origin) = open(&config).await;
    assert_eq!(origin, Origin::Loaded { peaks: 3 * 42 }, "three weeks of 42 four-hour slots");
    assert_eq!(second.model(), first.model());
    for hours in (0..7 * 24).step_by(7) {
        let at = TUESDAY_TEN + Duration::weeks(3) + Duration::hours(hours);
        assert_eq!(second.targets_at(at, BASE, 40), first.targets_at(at, BASE, 40), "{at}");
    }
    assert_eq!(second.targets_at(TUESDAY_TEN + Duration::weeks(3), BASE, 40), learned);
    drop(first);

    // Nothing observed since: a save writes nothing, and the shutdown save succeeds.
    let stop = CancellationToken::new();
    stop.cancel();
    second.clone().run(stop).await.expect("the saver stops cleanly");
    assert_eq!(second.merges(), 0);
}

#[tokio::test]
async fn a_second_writer_is_detected_by_its_etag_and_merged_not_overwritten() {
    let azurite = Azurite::start_blob();
    let config = config(&azurite, "two-writers.json").await;
    // Both open before either has written: both expect no blob.
    let (a, _) = open(&config).await;
    let (b, _) = open(&config).await;
    burst(&a, TUESDAY_TEN, 3);
    a.save().await.expect("a writes first");
    let wednesday = TUESDAY_TEN + Duration::days(1);
    burst(&b, wednesday, 7);
    b.save().await.expect("b's write meets a's blob, merges it in and writes again");
    assert_eq!(b.merges(), 1, "b detected a's write");

    // a writes again with its ETag, now stale: the same, the other way round.
    let afternoon = TUESDAY_TEN + Duration::hours(4);
    burst(&a, afternoon, 2);
    a.save().await.expect("a merges b's");
    assert_eq!(a.merges(), 1);

    let (fresh, _) = open(&config).await;
    let at = |t: OffsetDateTime| fresh.targets_at(t + Duration::weeks(1), BASE, 40).parked;
    assert_eq!((at(TUESDAY_TEN), at(wednesday), at(afternoon)), (3, 7, 2), "no peak was lost");
    assert_eq!(fresh.model(), a.model(), "a holds everything written");
}

#[tokio::test]
async fn a_write_with_a_stale_etag_is_refused_by_the_service() {
    let azurite = Azurite::start_blob();
    let config = config(&azurite, "etag.json").await;
    let blob = StateBlob::new(&config.state_url, None).unwrap();
    let first = blob.write(b"{}".to_vec(), &Expect::Absent).await.expect("created");
    assert!(matches!(blob.write(b"{}".to_vec(), &Expect::Absent).await, Err(WriteRefused::Conflict)), "exists");
    let second = blob.write(b"[]".to_vec(), &Expect::Unchanged(first.clone())).await.expect("unchanged");
    assert_ne!(first, second);
    let stale = blob.write(b"null".to_vec(), &Expect::Unchanged(first)).await;
    assert!(matches!(stale, Err(WriteRefused::Conflict)), "412 on the stale ETag");
    let stored = blob.read().await.unwrap().expect("the blob");
    assert_eq!((stored.bytes, stored.etag), (b"[]".to_vec(), second));
}

#[tokio::test]
async fn a_missing_blob_is_seeded_from_the_trace() {
    let azurite = Azurite::start_blob();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    // Five half-hour jobs every Tuesday at 10:00 UTC for four weeks.
    let mut lines = String::from("# seed\n");
    for week in 0..4 {
        let arrival = (TUESDAY_TEN + Duration::weeks(week)).unix_timestamp();
        for n in 0..5 {
            lines.push_str(&format!("{{\"arrival\": {}, \"duration\": 1800, \"name\": \"job {n}\"}}\n", arrival + n));
        }
    }
    std::fs::write(&trace, lines).unwrap();
    let config = LearnedConfig { seed_trace: Some(trace), ..config(&azurite, "seeded.json").await };

    let (seeded, origin) = open(&config).await;
    assert!(matches!(origin, Origin::Seeded { samples } if samples > 3 * 7 * 24 * 120), "{origin:?}");
    let next_tuesday = TUESDAY_TEN + Duration::weeks(4) + Duration::minutes(10);
    assert_eq!(seeded.targets_at(next_tuesday, BASE, 40), Targets { parked: 5, ..BASE });
    assert_eq!(seeded.targets_at(next_tuesday + Duration::hours(6), BASE, 40), BASE);

    // The seed is saved like any learning, and then the blob is what a restart reads.
    seeded.save().await.unwrap();
    let (restarted, origin) = open(&config).await;
    assert!(matches!(origin, Origin::Loaded { .. }), "{origin:?}");
    assert_eq!(restarted.model(), seeded.model());
}

#[tokio::test]
async fn a_corrupt_blob_fails_loudly_with_its_url_and_no_sas() {
    let azurite = Azurite::start_blob();
    let config = config(&azurite, "corrupt.json").await;
    assert!(config.state_url.contains("sig="), "the test URL carries a SAS");
    let blob = StateBlob::new(&config.state_url, None).unwrap();
    assert!(blob.write(b"{\"format\": 2, \"slots\": \"?\"}".to_vec(), &Expect::Absent).await.is_ok());

    let err = LearnedState::open(&config, None).await.expect_err("refused");
    assert!(matches!(err, LearnedError::Corrupt { .. }), "{err:?}");
    assert!(err.is_lasting());
    let text = Chain(&err).to_string();
    let shown = config.state_url.split('?').next().unwrap();
    assert!(text.contains(shown), "names the blob: {text}");
    assert!(!text.contains("sig=") && !text.contains(config.state_url.split("sig=").nth(1).unwrap()), "{text}");
    assert!(!format!("{err:?}").contains("sig="), "nor in Debug: {err:?}");
    // The blob is left for someone to look at.
    assert_eq!(blob.read().await.unwrap().unwrap().bytes, b"{\"format\": 2, \"slots\": \"?\"}".to_vec());
}

#[tokio::test]
async fn a_blob_of_another_format_is_refused_not_reset() {
    let azurite = Azurite::start_blob();
    let config = config(&azurite, "format.json").await;
    let blob = StateBlob::new(&config.state_url, None).unwrap();
    assert!(blob.write(br#"{"format": 3, "anything": []}"#.to_vec(), &Expect::Absent).await.is_ok());
    let err = LearnedState::open(&config, None).await.expect_err("refused");
    assert!(Chain(&err).to_string().contains("snapshot format 3 is not the format 2"), "{err}");
}
