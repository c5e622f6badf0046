//! The scale set API's JSON, as the Go clients read and write it (PROTOCOL.md §5.1,
//! §6.1, §7, §9), and its translation to the port's types.
//!
//! Go's `encoding/json` hides three habits of the service that a strict serde decoder
//! would trip over, so every response goes through [`decode`]:
//! - keys are matched **without case** (a .NET service may well answer `runnerSetting`
//!   to a client that sent `RunnerSetting`): every object key is lower-cased before
//!   serde sees it, and the response types below name their fields in lower case;
//! - a leading UTF-8 BOM is stripped (§2.3);
//! - unknown fields are ignored, and absent ones take their zero value.
//!
//! Requests keep Go's exact tags (`RunnerSetting` with a capital R, §5.2).
//! Timestamps accept RFC 3339 with 0–9 fractional digits and any offset, `null`, and
//! Go's zero time `0001-01-01T00:00:00Z`, which all mean "none".
//!
//! Response types that carry a token or a JIT config derive no `Debug`: their values
//! move into a [`SecretValue`] or [`JitConfig`] at once.

use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::ports::{JobInfo, JobMessage, Message, Statistics};

/// The only envelope type that carries job messages (§7.2).
pub const JOB_MESSAGES: &str = "RunnerScaleSetJobMessages";

/// What Go sends for an unset `time.Time` (§5.2).
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Why a body could not be read. Never quotes the body: it may hold a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the body does not have the expected shape ({0})")]
    Shape(String),
}

/// `bytes` without a leading UTF-8 byte order mark.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// A response body as Go would read it into `T`: BOM stripped, keys without case.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let value = parse_json(bytes)?;
    from_value(value)
}

/// The JSON value of a body, BOM stripped, every object key lower-cased.
pub fn parse_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    let bytes = strip_bom(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson { line: e.line(), column: e.column() })?;
    Ok(lower_keys(value))
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    T::deserialize(value).map_err(|e| DecodeError::Shape(without_quoted_values(&e.to_string())))
}

/// Lower-cases every object key, recursively. When two keys differ only in case, one
/// of them wins; the service is not known to send such pairs.
fn lower_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k.to_lowercase(), lower_keys(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(lower_keys).collect()),
        other => other,
    }
}

/// serde's messages quote the offending value (`invalid type: string "…"`); drop
/// what is between double quotes so no value of the body reaches an error.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                out.push_str("\"…");
                quoted = true;
            }
            ('"', true) => {
                out.push('"');
                quoted = false;
            }
            (c, false) => out.push(c),
            (_, true) => {}
        }
    }
    out
}

/// An RFC 3339 time, `null`, absent, empty or Go's zero time (→ `None`).
fn go_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else { return Ok(None) };
    parse_go_time(&text).map_err(serde::de::Error::custom)
}

pub fn parse_go_time(text: &str) -> Result<Option<OffsetDateTime>, &'static str> {
    if text.is_empty() {
        return Ok(None);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| "a time that is not RFC 3339")?;
    let zero = OffsetDateTime::parse(GO_ZERO_TIME, &Rfc3339).map_err(|_| "Go's zero time")?;
    Ok((t != zero).then_some(t))
}

/// Go's `string` field that some producer might send as a number (`jobId`).
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(serde::de::Error::custom("a jobId that is neither a string nor a number")),
    }
}

// ---------------------------------------------------------------------------------
// Requests: Go's tags exactly.

/// R3's body (§3.4).
#[derive(Serialize)]
pub struct RegistrationRequest<'a> {
    pub url: &'a str,
    pub runner_event: &'static str,
}

#[derive(Serialize)]
pub struct LabelOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'a str,
}

#[derive(Serialize)]
pub struct RunnerSettingOut {
    #[serde(rename = "disableUpdate")]
    pub disable_update: bool,
}

/// A3's body (§5.4): what SS sends, zero `createdOn` included (Go's `omitempty` does
/// not drop a struct).
#[derive(Serialize)]
pub struct CreateScaleSet<'a> {
    pub name: &'a str,
    #[serde(rename = "runnerGroupId")]
    pub runner_group_id: u64,
    pub labels: Vec<LabelOut<'a>>,
    #[serde(rename = "RunnerSetting")]
    pub runner_setting: RunnerSettingOut,
    #[serde(rename = "createdOn")]
    pub created_on: &'static str,
}

/// A7's body (§6.1). The ARC form, without SS's nil `sessionId`: it is the one seen
/// on the wire (ARC#4355), and the service assigns the id either way.
#[derive(Serialize)]
pub struct CreateSession<'a> {
    #[serde(rename = "ownerName")]
    pub owner_name: &'a str,
}

/// A12's body (§9.1): both fields are always sent.
#[derive(Serialize)]
pub struct JitRequest<'a> {
    pub name: &'a str,
    #[serde(rename = "workFolder")]
    pub work_folder: &'a str,
}

// ---------------------------------------------------------------------------------
// Responses: field names lower-cased (see `decode`).

/// R3's answer: the Actions service URL and the admin JWT.
#[derive(Deserialize)]
pub struct AdminConnection {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub token: String,
}

/// `{"count", "value"}`, the Actions service's list shape.
#[derive(Debug, Deserialize)]
pub struct List<T> {
    #[serde(default)]
    pub count: u64,
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
}

/// Only the name is read: every label of a scale set is `System` (§5.4).
#[derive(Debug, Default, Deserialize)]
pub struct Label {
    #[serde(default)]
    pub name: String,
}

/// A scale set as the service describes it (§5.1), as far as the port needs it.
/// `RunnerSetting`, `createdOn` and `statistics` are not read (the set's demand comes
/// from the session and its messages).
#[derive(Debug, Default, Deserialize)]
pub struct ScaleSet {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "runnergroupid", default)]
    pub runner_group_id: u64,
    #[serde(default)]
    pub labels: Vec<Label>,
}

#[derive(Debug, Deserialize)]
pub struct RunnerGroup {
    #[serde(default)]
    pub id: u64,
}

/// The counters (§7.4). Go's `int`: read wide, checked when converted.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct WireStatistics {
    #[serde(rename = "totalavailablejobs", default)]
    pub available_jobs: i64,
    #[serde(rename = "totalacquiredjobs", default)]
    pub acquired_jobs: i64,
    #[serde(rename = "totalassignedjobs", default)]
    pub assigned_jobs: i64,
    #[serde(rename = "totalrunningjobs", default)]
    pub running_jobs: i64,
    #[serde(rename = "totalregisteredrunners", default)]
    pub registered_runners: i64,
    #[serde(rename = "totalbusyrunners", default)]
    pub busy_runners: i64,
    #[serde(rename = "totalidlerunners", default)]
    pub idle_runners: i64,
}

impl WireStatistics {
    /// The port's counters; a negative or oversized count is an invalid answer rather
    /// than a silently clipped demand.
    pub fn to_port(self) -> Result<Statistics, String> {
        let count = |name: &str, v: i64| u32::try_from(v).map_err(|_| format!("a count in range for {name} ({v})"));
        Ok(Statistics {
            available_jobs: count("totalAvailableJobs", self.available_jobs)?,
            acquired_jobs: count("totalAcquiredJobs", self.acquired_jobs)?,
            assigned_jobs: count("totalAssignedJobs", self.assigned_jobs)?,
            running_jobs: count("totalRunningJobs", self.running_jobs)?,
            registered_runners: count("totalRegisteredRunners", self.registered_runners)?,
            busy_runners: count("totalBusyRunners", self.busy_runners)?,
            idle_runners: count("totalIdleRunners", self.idle_runners)?,
        })
    }
}

/// A message session (§6.1). Every field optional: [`super::session`] validates.
#[derive(Deserialize)]
pub struct Session {
    #[serde(rename = "sessionid", default)]
    pub session_id: Option<String>,
    #[serde(rename = "messagequeueurl", default)]
    pub message_queue_url: Option<String>,
    #[serde(rename = "messagequeueaccesstoken", default)]
    pub message_queue_access_token: Option<String>,
    #[serde(default)]
    pub statistics: Option<WireStatistics>,
}

/// A runner of a scale set (§9.1, §9.2).
#[derive(Debug, Default, Deserialize)]
pub struct RunnerReference {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "runnerscalesetid", default)]
    pub scale_set_id: u64,
}

/// A12's answer.
#[derive(Deserialize)]
pub struct JitAnswer {
    #[serde(default)]
    pub runner: Option<RunnerReference>,
    #[serde(rename = "encodedjitconfig", default)]
    pub encoded_jit_config: Option<String>,
}

/// An error body (§2.5): only these two fields are read.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "typename", default)]
    pub type_name: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The message envelope (§7.2).
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "messageid", default)]
    message_id: Option<i64>,
    #[serde(rename = "messagetype", default)]
    message_type: String,
    /// A JSON string holding a JSON array; an array itself is accepted too.
    #[serde(default)]
    body: Value,
    #[serde(default)]
    statistics: Option<WireStatistics>,
}

/// The fields every job message has (§7.3).
#[derive(Deserialize)]
struct JobBase {
    #[serde(rename = "messagetype", default)]
    message_type: String,
    #[serde(rename = "runnerrequestid", default)]
    runner_request_id: i64,
    #[serde(rename = "repositoryname", default)]
    repository_name: String,
    #[serde(rename = "ownername", default)]
    owner_name: String,
    #[serde(rename = "jobid", default, deserialize_with = "string_or_number")]
    job_id: String,
    #[serde(rename = "jobdisplayname", default)]
    job_display_name: String,
    #[serde(rename = "workflowrunid", default)]
    workflow_run_id: u64,
    #[serde(rename = "queuetime", default, deserialize_with = "go_time")]
    queue_time: Option<OffsetDateTime>,
    #[serde(rename = "scalesetassigntime", default, deserialize_with = "go_time")]
    scale_set_assign_time: Option<OffsetDateTime>,
    #[serde(rename = "runnerassigntime", default, deserialize_with = "go_time")]
    runner_assign_time: Option<OffsetDateTime>,
    #[serde(rename = "finishtime", default, deserialize_with = "go_time")]
    finish_time: Option<OffsetDateTime>,
    // JobStarted and JobCompleted.
    #[serde(rename = "runnerid", default)]
    runner_id: u64,
    #[serde(rename = "runnername", default)]
    runner_name: String,
    // JobCompleted.
    #[serde(default)]
    result: String,
}

impl JobBase {
    fn info(&self) -> JobInfo {
        // SS keeps `repositoryName` and `ownerName` apart; ARC joins them (§7.3).
        let repository = match (self.owner_name.as_str(), self.repository_name.as_str()) {
            ("", name) => name.to_owned(),
            (_, name) if name.contains('/') => name.to_owned(),
            (owner, name) => format!("{owner}/{name}"),
        };
        JobInfo {
            job_id: self.job_id.clone(),
            request_id: self.runner_request_id,
            repository,
            workflow_run_id: self.workflow_run_id,
            job_display_name: self.job_display_name.clone(),
            queue_time: self.queue_time,
            scale_set_assign_time: self.scale_set_assign_time,
            runner_assign_time: self.runner_assign_time,
            finish_time: self.finish_time,
        }
    }

    /// The port's message, or `None` for a type this client does not know (skipped,
    /// as SS and ARC skip them).
    fn into_port(self) -> Option<JobMessage> {
        let job = self.info();
        match self.message_type.as_str() {
            "JobAvailable" => Some(JobMessage::Available { job }),
            "JobAssigned" => Some(JobMessage::Assigned { job }),
            "JobStarted" => Some(JobMessage::Started { job, runner_id: self.runner_id, runner_name: self.runner_name }),
            "JobCompleted" => Some(JobMessage::Completed {
                job,
                runner_id: self.runner_id,
                runner_name: self.runner_name,
                result: self.result,
            }),
            _ => None,
        }
    }
}

/// A 200 answer of M1 as the port's [`Message`].
///
/// - No JSON, no `messageId` or no `statistics` → `Err` (the caller reports an
///   invalid answer, transient): without an id the message cannot be acknowledged,
///   and without statistics there is no demand to apply. SS would crash on missing
///   statistics and ARC rejected them, so the service is not known to omit them.
/// - A body that cannot be decoded, or another `messageType` → `Ok` with `jobs: Err`,
///   so the caller still acknowledges the message and applies its statistics.
pub fn parse_message(bytes: &[u8]) -> Result<Message, String> {
    let envelope: Envelope = decode(bytes).map_err(|e| format!("a readable message ({e})"))?;
    let id = envelope.message_id.ok_or_else(|| "a messageId in the message".to_owned())?;
    let statistics = envelope
        .statistics
        .ok_or_else(|| format!("statistics in message {id}"))?
        .to_port()
        .map_err(|e| format!("{e} in message {id}"))?;
    let jobs = if envelope.message_type == JOB_MESSAGES {
        parse_body(envelope.body)
    } else {
        Err(format!("unsupported message type {:?}", envelope.message_type))
    };
    Ok(Message { id, statistics, jobs })
}

/// The double-encoded body (§7.2): a JSON string whose text is a JSON array.
fn parse_body(body: Value) -> Result<Vec<JobMessage>, String> {
    let entries = match body {
        Value::Null => return Ok(Vec::new()),
        Value::String(text) if text.trim().is_empty() => return Ok(Vec::new()),
        Value::String(text) => match parse_json(text.as_bytes()) {
            Ok(Value::Array(entries)) => entries,
            Ok(_) => return Err("the body is not a JSON array of job messages".into()),
            Err(e) => return Err(format!("the body cannot be decoded: {e}")),
        },
        Value::Array(entries) => entries.into_iter().map(lower_keys).collect(),
        _ => return Err("the body is neither a string nor an array".into()),
    };
    let mut jobs = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        // One entry of the wrong shape fails the batch rather than vanish from it: the
        // caller then knows it did not see every event.
        let base: JobBase = from_value(entry).map_err(|e| format!("job message {index} cannot be decoded: {e}"))?;
        jobs.extend(base.into_port());
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    /// PROTOCOL.md §7.2, "Full example constructed from the Go types".
    const FULL_MESSAGE: &str = r#"{
      "messageId": 100000171,
      "messageType": "RunnerScaleSetJobMessages",
      "body": "[{\"messageType\":\"JobStarted\",\"runnerId\":2402,\"runnerName\":\"vmss-runner-0a1b\",\"runnerRequestId\":0,\"repositoryName\":\"repo\",\"ownerName\":\"my-org\",\"jobId\":\"85cb98eb-2919-5766-872c-cc997f618c1f\",\"jobWorkflowRef\":\"my-org/repo/.github/workflows/ci.yml@refs/heads/main\",\"jobDisplayName\":\"build\",\"workflowRunId\":31753891150,\"eventName\":\"push\",\"requestLabels\":[\"my-scale-set\"],\"queueTime\":\"2026-08-14T00:20:01.123Z\",\"scaleSetAssignTime\":\"2026-08-14T00:20:02Z\",\"runnerAssignTime\":\"2026-08-14T00:20:40Z\",\"finishTime\":\"0001-01-01T00:00:00Z\"}]",
      "statistics": {"totalAvailableJobs":0,"totalAcquiredJobs":0,"totalAssignedJobs":1,"totalRunningJobs":1,"totalRegisteredRunners":1,"totalBusyRunners":1,"totalIdleRunners":0}
    }"#;

    fn message(body_entries: &str) -> String {
        let body = serde_json::to_string(body_entries).unwrap();
        format!(
            r#"{{"messageId":7,"messageType":"RunnerScaleSetJobMessages","body":{body},"statistics":{{"totalAssignedJobs":2}}}}"#
        )
    }

    #[test]
    fn the_full_example_decodes_twice_into_a_started_job() {
        let m = parse_message(FULL_MESSAGE.as_bytes()).unwrap();
        assert_eq!(m.id, 100_000_171);
        assert_eq!(
            m.statistics,
            Statistics {
                assigned_jobs: 1,
                running_jobs: 1,
                registered_runners: 1,
                busy_runners: 1,
                ..Default::default()
            }
        );
        let jobs = m.jobs.unwrap();
        assert_eq!(
            jobs,
            vec![JobMessage::Started {
                job: JobInfo {
                    job_id: "85cb98eb-2919-5766-872c-cc997f618c1f".into(),
                    request_id: 0,
                    repository: "my-org/repo".into(),
                    workflow_run_id: 31_753_891_150,
                    job_display_name: "build".into(),
                    queue_time: Some(datetime!(2026-08-14 00:20:01.123 UTC)),
                    scale_set_assign_time: Some(datetime!(2026-08-14 00:20:02 UTC)),
                    runner_assign_time: Some(datetime!(2026-08-14 00:20:40 UTC)),
                    finish_time: None,
                },
                runner_id: 2402,
                runner_name: "vmss-runner-0a1b".into(),
            }]
        );
    }

    #[test]
    fn the_minimal_fixture_is_a_statistics_only_message_when_statistics_are_there() {
        // SS's fixture `{"messageId":1,"messageType":"RunnerScaleSetJobMessages"}` has no
        // statistics: refused, since there would be no demand to apply.
        let err = parse_message(br#"{"messageId":1,"messageType":"RunnerScaleSetJobMessages"}"#).unwrap_err();
        assert!(err.contains("statistics in message 1"), "{err}");
        let m = parse_message(br#"{"messageId":1,"messageType":"RunnerScaleSetJobMessages","statistics":{}}"#).unwrap();
        assert_eq!((m.id, m.jobs), (1, Ok(vec![])));
    }

    #[test]
    fn keys_are_matched_without_case_and_a_bom_is_stripped() {
        let upper = FULL_MESSAGE
            .replace("\"messageId\"", "\"MESSAGEID\"")
            .replace("\"statistics\"", "\"Statistics\"")
            .replace("totalAssignedJobs", "TotalAssignedJobs")
            .replace("\\\"runnerName\\\"", "\\\"RunnerName\\\"")
            .replace("\\\"jobId\\\"", "\\\"JOBID\\\"");
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(upper.as_bytes());
        let m = parse_message(&bytes).unwrap();
        assert_eq!(m.id, 100_000_171);
        assert_eq!(m.statistics.assigned_jobs, 1);
        let JobMessage::Started { runner_name, job, .. } = &m.jobs.unwrap()[0] else { panic!("not started") };
        assert_eq!(runner_name, "vmss-runner-0a1b");
        assert_eq!(job.job_id, "85cb98eb-2919-5766-872c-cc997f618c1f");
    }

    #[test]
    fn all_four_job_types_decode_and_unknown_ones_are_skipped() {
        let m = parse_message(message(r#"[
            {"messageType":"JobAvailable","runnerRequestId":11,"jobId":"j1","acquireJobUrl":"http://x/acquire"},
            {"messageType":"JobAssigned","runnerRequestId":0,"jobId":"j2","ownerName":"o","repositoryName":"r"},
            {"messageType":"SomethingNew","whatever":[1,2]},
            {"messageType":"JobCompleted","jobId":"j2","runnerId":5,"runnerName":"n","result":"canceled","finishTime":null},
            {"messageType":"JobStarted","jobId":12345,"runnerId":6,"runnerName":"m"}
        ]"#).as_bytes())
        .unwrap();
        let jobs = m.jobs.unwrap();
        assert_eq!(jobs.len(), 4);
        assert!(matches!(&jobs[0], JobMessage::Available { job } if job.request_id == 11 && job.job_id == "j1"));
        assert!(matches!(&jobs[1], JobMessage::Assigned { job } if job.repository == "o/r"));
        assert!(matches!(&jobs[2], JobMessage::Completed { result, runner_id: 5, .. } if result == "canceled"));
        assert!(matches!(&jobs[3], JobMessage::Started { job, .. } if job.job_id == "12345"), "a numeric jobId");
    }

    #[test]
    fn an_undecodable_body_keeps_the_id_and_statistics_and_says_why_without_quoting_it() {
        let secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln";
        for body in [
            format!("[{{\"messageType\":\"JobStarted\",\"runnerId\":\"{secret}\"}}]"),
            format!("not json {secret}"),
            format!("{{\"token\":\"{secret}\"}}"),
        ] {
            let m = parse_message(message(&body).as_bytes()).unwrap();
            assert_eq!((m.id, m.statistics.assigned_jobs), (7, 2));
            let reason = m.jobs.unwrap_err();
            assert!(!reason.contains("c2VjcmV0"), "{reason}");
        }
        let body = "[{\"messageType\":\"JobStarted\",\"runnerId\":\"x\"}]";
        let reason = parse_message(message(body).as_bytes()).unwrap().jobs.unwrap_err();
        assert!(reason.starts_with("job message 0 cannot be decoded"), "{reason}");
    }

    #[test]
    fn another_message_type_is_reported_not_fatal() {
        let m = parse_message(br#"{"messageId":3,"messageType":"Other","body":"[]","statistics":{}}"#).unwrap();
        assert_eq!(m.jobs, Err("unsupported message type \"Other\"".into()));
    }

    #[test]
    fn an_empty_or_unreadable_envelope_is_an_error() {
        assert!(parse_message(b"").unwrap_err().contains("the body is empty"));
        assert!(parse_message(b"\xEF\xBB\xBF  ").unwrap_err().contains("the body is empty"));
        assert!(parse_message(b"<html>").unwrap_err().contains("not JSON"));
        assert!(parse_message(br#"{"statistics":{}}"#).unwrap_err().contains("messageId"));
        let negative = br#"{"messageId":2,"statistics":{"totalAssignedJobs":-1}}"#;
        assert!(parse_message(negative).unwrap_err().contains("totalAssignedJobs"));
    }

    #[test]
    fn times_accept_zero_to_nine_fractional_digits_offsets_null_and_go_zero() {
        assert_eq!(parse_go_time("2026-08-14T00:20:01Z"), Ok(Some(datetime!(2026-08-14 00:20:01 UTC))));
        assert_eq!(parse_go_time("2026-08-14T00:20:01.5Z"), Ok(Some(datetime!(2026-08-14 00:20:01.5 UTC))));
        assert_eq!(
            parse_go_time("2026-08-14T00:20:01.123456789+02:00"),
            Ok(Some(datetime!(2026-08-14 00:20:01.123456789 +02:00)))
        );
        assert_eq!(parse_go_time(GO_ZERO_TIME), Ok(None));
        assert_eq!(parse_go_time(""), Ok(None));
        assert!(parse_go_time("yesterday").is_err());
        let m = parse_message(
            message(r#"[{"messageType":"JobAssigned","queueTime":null,"finishTime":"0001-01-01T00:00:00Z"}]"#)
                .as_bytes(),
        )
        .unwrap();
        let JobMessage::Assigned { job } = &m.jobs.unwrap()[0] else { panic!("not assigned") };
        assert_eq!((job.queue_time, job.finish_time), (None, None));
    }

    #[test]
    fn a_scale_set_decodes_from_the_create_echo_whatever_the_case_of_its_keys() {
        // The verbatim create echo of SS's test server (§5.4).
        let echo = br#"{"id":1,"name":"ScaleSet","labels":[{"type":"System","name":"ScaleSet"}],"RunnerSetting":{},"createdOn":"0001-01-01T00:00:00Z"}"#;
        let s: ScaleSet = decode(echo).unwrap();
        assert_eq!((s.id, s.name.as_str(), s.labels[0].name.as_str()), (1, "ScaleSet", "ScaleSet"));
        let s: ScaleSet = decode(br#"{"ID":2,"RunnerGroupID":3,"runnerSetting":{"disableUpdate":true}}"#).unwrap();
        assert_eq!((s.id, s.runner_group_id), (2, 3));
    }

    #[test]
    fn the_create_body_has_gos_exact_keys() {
        let body = CreateScaleSet {
            name: "my-scale-set",
            runner_group_id: 1,
            labels: vec![LabelOut { kind: "System", name: "my-scale-set" }],
            runner_setting: RunnerSettingOut { disable_update: true },
            created_on: GO_ZERO_TIME,
        };
        // §5.4, constructed from the Go types.
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"name":"my-scale-set","runnerGroupId":1,"labels":[{"type":"System","name":"my-scale-set"}],"RunnerSetting":{"disableUpdate":true},"createdOn":"0001-01-01T00:00:00Z"}"#
        );
        assert_eq!(
            serde_json::to_string(&JitRequest { name: "runner-1a2b3c4d", work_folder: "" }).unwrap(),
            r#"{"name":"runner-1a2b3c4d","workFolder":""}"#
        );
        assert_eq!(serde_json::to_string(&CreateSession { owner_name: "h" }).unwrap(), r#"{"ownerName":"h"}"#);
        assert_eq!(
            serde_json::to_string(&RegistrationRequest { url: "https://github.com/my-org", runner_event: "register" })
                .unwrap(),
            r#"{"url":"https://github.com/my-org","runner_event":"register"}"#
        );
    }

    #[test]
    fn lists_sessions_jit_answers_and_error_bodies_decode_from_the_fixtures() {
        let list: List<ScaleSet> = decode(br#"{"count":1,"value":[{"id":1,"name":"ScaleSet"}]}"#).unwrap();
        assert_eq!((list.count, list.value[0].id), (1, 1));
        let groups: List<RunnerGroup> =
            decode(br#"{"count": 1, "value": [{"id": 1, "name": "test-runner-group"}]}"#).unwrap();
        assert_eq!(groups.value[0].id, 1);
        // ARC-legacy's verbatim session fixture (§6.1).
        let session: Session = decode(
            br#"{"ownerName":"foo","runnerScaleSet":{"id":1,"name":"ScaleSet"},"messageQueueUrl":"http://fake.actions.github.com/123","messageQueueAccessToken":"fake.jwt.here"}"#,
        )
        .unwrap();
        assert_eq!(session.message_queue_url.as_deref(), Some("http://fake.actions.github.com/123"));
        assert!(session.session_id.is_none() && session.statistics.is_none());
        let jit: JitAnswer = decode(
            br#"{"runner":{"id":42,"name":"runner-1a2b3c4d","runnerScaleSetId":7},"encodedJITConfig":"eyIucnVubmVyIjoi"}"#,
        )
        .unwrap();
        assert_eq!(
            (jit.runner.as_ref().unwrap().scale_set_id, jit.encoded_jit_config.as_deref()),
            (7, Some("eyIucnVubmVyIjoi"))
        );
        let e: ErrorBody = decode(br#"{"typeName":"AgentExistsException","message":"runner already exists"}"#).unwrap();
        assert_eq!(e.type_name.as_deref(), Some("AgentExistsException"));
        let acquired: List<i64> = decode(br#"{"count":2,"value":[1,2]}"#).unwrap();
        assert_eq!(acquired.value, vec![1, 2]);
        let legacy: List<i64> = decode(br#"{"value": [1]}"#).unwrap();
        assert_eq!(legacy.value, vec![1]);
    }
}
