//! Workloads to replay: a list of CI jobs, each with the moment it asked for a runner,
//! how long it ran and its labels. Two formats are read (`docs/simulate.md`):
//!
//! - **JSONL**, the project's own: one job a line,
//!   `{"arrival": <unix seconds>, "duration": <seconds>, "labels": [...], "name": "..."}`
//!   (`name` optional; blank lines and lines starting with `#` are skipped).
//! - **bitcoin-core-ci-stats**: the JSON array (optionally gzipped) of
//!   `willcl-ark/bitcoin-core-ci-stats`. Its workload is fixed so results compare:
//!   arrival = `executingTimestamp`, service time = `duration`, records with
//!   `duration <= 0` dropped, and jobs whose name contains `macos` or `windows`
//!   (case-insensitive) dropped — they ran on GitHub-hosted images.

use std::{io::Read, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

/// One job of a workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceJob {
    /// When the job asked for a runner, in Unix seconds.
    pub arrival: f64,
    /// How long it ran once it had a runner, in seconds.
    pub duration: f64,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A workload: jobs sorted by arrival.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    pub jobs: Vec<TraceJob>,
    /// What reading the source dropped, for the summary a reader checks.
    pub dropped: Dropped,
}

/// Records a reader left out, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub records: usize,
    pub no_duration: usize,
    pub hosted_images: usize,
    pub no_start: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("reading the trace failed")]
    Read(#[source] std::io::Error),
    #[error("line {line} of the JSONL trace is not a job")]
    Line {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("the trace is not a bitcoin-core-ci-stats JSON array")]
    Array(#[source] serde_json::Error),
    #[error("job {index} has a negative or non-finite arrival or duration")]
    Invalid { index: usize },
}

/// What a reader checks first: how many jobs, over what span, how many at once.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSummary {
    pub jobs: usize,
    pub span: Duration,
    /// The most jobs running at one moment, had each started on arrival.
    pub peak_concurrency: usize,
    /// The sum of the jobs' durations.
    pub busy: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CiStatsRecord {
    #[serde(default)]
    name: String,
    executing_timestamp: Option<f64>,
    duration: Option<f64>,
}

impl Workload {
    /// Jobs in any order; they are sorted by arrival (stable, so equal arrivals keep
    /// their order and a replay is deterministic).
    pub fn new(mut jobs: Vec<TraceJob>) -> Result<Self, WorkloadError> {
        if let Some(index) = jobs
            .iter()
            .position(|j| !(j.arrival.is_finite() && j.duration.is_finite() && j.arrival >= 0.0 && j.duration >= 0.0))
        {
            return Err(WorkloadError::Invalid { index });
        }
        jobs.sort_by(|a, b| a.arrival.total_cmp(&b.arrival));
        Ok(Self { jobs, dropped: Dropped::default() })
    }

    /// Read a trace file: gzipped or not, a JSON array (bitcoin-core-ci-stats) or JSONL.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        let raw = std::fs::read(path).map_err(WorkloadError::Read)?;
        let text = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(WorkloadError::Read)?;
            out
        } else {
            raw
        };
        let first = text.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            Self::from_ci_stats(&text)
        } else {
            Self::from_jsonl(&String::from_utf8_lossy(&text))
        }
    }

    /// The project's JSONL format.
    pub fn from_jsonl(text: &str) -> Result<Self, WorkloadError> {
        let mut jobs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            jobs.push(serde_json::from_str(line).map_err(|source| WorkloadError::Line { line: n + 1, source })?);
        }
        Self::new(jobs)
    }

    /// Write the JSONL format, one job a line.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for job in &self.jobs {
            out.push_str(&serde_json::to_string(job).expect("a job serializes"));
            out.push('\n');
        }
        out
    }

    /// The bitcoin-core-ci-stats array, with the workload rules of the module docs.
    pub fn from_ci_stats(json: &[u8]) -> Result<Self, WorkloadError> {
        let records: Vec<CiStatsRecord> = serde_json::from_slice(json).map_err(WorkloadError::Array)?;
        let mut dropped = Dropped { records: records.len(), ..Dropped::default() };
        let mut jobs = Vec::new();
        for r in records {
            let lower = r.name.to_lowercase();
            if lower.contains("macos") || lower.contains("windows") {
                dropped.hosted_images += 1;
                continue;
            }
            let Some(duration) = r.duration.filter(|d| *d > 0.0) else {
                dropped.no_duration += 1;
                continue;
            };
            let Some(arrival) = r.executing_timestamp.filter(|t| *t > 0.0) else {
                dropped.no_start += 1;
                continue;
            };
            jobs.push(TraceJob { arrival, duration, labels: vec!["self-hosted".into(), "linux".into()], name: r.name });
        }
        dropped.records -= jobs.len();
        Ok(Self { dropped, ..Self::new(jobs)? })
    }

    /// Arrival of the first job, in Unix seconds (0 for an empty workload).
    pub fn start(&self) -> f64 {
        self.jobs.first().map_or(0.0, |j| j.arrival)
    }

    /// Each job's arrival relative to the first job.
    pub fn offset(&self, job: &TraceJob) -> Duration {
        Duration::from_secs_f64((job.arrival - self.start()).max(0.0))
    }

    pub fn summary(&self) -> WorkloadSummary {
        let span = self
            .jobs
            .iter()
            .map(|j| j.arrival + j.duration)
            .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.max(e))))
            .map_or(Duration::ZERO, |end| Duration::from_secs_f64((end - self.start()).max(0.0)));
        // Sweep over starts (+1) and ends (-1); at equal times ends go first.
        let mut events: Vec<(f64, i32)> =
            self.jobs.iter().flat_map(|j| [(j.arrival, 1), (j.arrival + j.duration, -1)]).collect();
        events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut now, mut peak) = (0i32, 0i32);
        for (_, delta) in events {
            now += delta;
            peak = peak.max(now);
        }
        WorkloadSummary {
            jobs: self.jobs.len(),
            span,
            peak_concurrency: peak as usize,
            busy: Duration::from_secs_f64(self.jobs.iter().map(|j| j.duration).sum()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(arrival: f64, duration: f64) -> TraceJob {
        TraceJob { arrival, duration, labels: vec!["linux".into()], name: String::new() }
    }

    #[test]
    fn jsonl_round_trips_and_sorts_by_arrival() {
        let text = "# a comment\n{\"arrival\": 20, \"duration\": 5, \"labels\": [\"linux\"]}\n\n\
                    {\"arrival\": 10, \"duration\": 30, \"labels\": [\"linux\"], \"name\": \"build\"}\n";
        let w = Workload::from_jsonl(text).unwrap();
        assert_eq!(w.jobs.iter().map(|j| j.arrival).collect::<Vec<_>>(), [10.0, 20.0]);
        assert_eq!(w.jobs[0].name, "build");
        assert_eq!(Workload::from_jsonl(&w.to_jsonl()).unwrap(), w);
    }

    #[test]
    fn a_bad_jsonl_line_is_named_by_its_number() {
        let err = Workload::from_jsonl("{\"arrival\": 1, \"duration\": 2}\nnot json\n").unwrap_err();
        assert!(matches!(err, WorkloadError::Line { line: 2, .. }), "{err:?}");
        assert!(matches!(
            Workload::from_jsonl("{\"arrival\": 1, \"duration\": -2}").unwrap_err(),
            WorkloadError::Invalid { index: 0 }
        ));
    }

    #[test]
    fn ci_stats_records_follow_the_workload_rules() {
        let json = br#"[
            {"name": "tidy", "executingTimestamp": 1000, "duration": 60},
            {"name": "macOS 14 native, arm64", "executingTimestamp": 1001, "duration": 60},
            {"name": "Windows native, VS 2022", "executingTimestamp": 1002, "duration": 60},
            {"name": "ASan", "executingTimestamp": 1003, "duration": 0},
            {"name": "fuzz", "executingTimestamp": 990, "duration": 120}
        ]"#;
        let w = Workload::from_ci_stats(json).unwrap();
        assert_eq!(w.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["fuzz", "tidy"]);
        assert_eq!(w.dropped, Dropped { records: 3, no_duration: 1, hosted_images: 2, no_start: 0 });
    }

    #[test]
    fn the_summary_counts_span_and_peak_concurrency() {
        // 0..10, 5..15, 10..12 (starts as the first ends), 20..21.
        let w = Workload::new(vec![job(100.0, 10.0), job(105.0, 10.0), job(110.0, 2.0), job(120.0, 1.0)]).unwrap();
        let s = w.summary();
        assert_eq!((s.jobs, s.span, s.peak_concurrency), (4, Duration::from_secs(21), 2));
        assert_eq!(s.busy, Duration::from_secs(23));
    }

    #[test]
    fn a_gzipped_trace_loads_like_the_plain_one() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("workload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.json.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"[{"name": "lint", "executingTimestamp": 5, "duration": 9}]"#).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let w = Workload::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((w.jobs.len(), w.jobs[0].duration), (1, 9.0));
    }
}
