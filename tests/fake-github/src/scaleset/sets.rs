//! Scale sets and runner groups (A1–A6, PROTOCOL.md §5) and the deletion of dormant sets
//! (§16.2).

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{error, http::Reply, jobs, messages, rfc3339, stats, JobFlow};
use crate::{
    server::Inner,
    state::{RunnerGroup, Scope},
};

pub(crate) struct ScaleSet {
    pub id: u64,
    pub tenant: usize,
    pub name: String,
    pub group_id: u64,
    /// `(type, name)` pairs.
    pub labels: Vec<(String, String)>,
    /// Echoed as sent (`{"disableUpdate":true}` and the like).
    pub runner_setting: Value,
    pub created_on: OffsetDateTime,
    /// `None`: the service default ([`super::ScaleSetConfig::flow`]).
    pub flow: Option<JobFlow>,
    /// The last `X-ScaleSetMaxCapacity` a poll sent.
    pub max_capacity: Option<u32>,
    /// Since when no session has been active (creation, or the end of the last session).
    pub idle_since: Instant,
    pub queue: messages::Queue,
}

impl ScaleSet {
    pub fn label_names(&self) -> Vec<String> {
        self.labels.iter().map(|(_, n)| n.clone()).collect()
    }
}

/// A JSON object field, matched case-insensitively as the service's deserializer does.
pub(crate) fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// The runner groups of a tenant: an organization's (shared with the REST fake), or only
/// `Default` (id 1) for a repository.
pub(crate) fn groups(inner: &mut Inner, scope: &Scope) -> Vec<RunnerGroup> {
    match scope {
        Scope::Org(org) => inner.runners.groups(org).clone(),
        Scope::Repo(_) => vec![RunnerGroup { id: 1, name: "Default".into(), default: true }],
    }
}

fn group_name(inner: &mut Inner, scope: &Scope, id: u64) -> Option<String> {
    groups(inner, scope).into_iter().find(|g| g.id == id).map(|g| g.name)
}

pub(crate) fn set_json(inner: &mut Inner, id: u64, base: &str) -> Value {
    let statistics = stats::statistics(inner, id);
    let Some(set) = inner.broker.sets.get(&id) else { return Value::Null };
    let (tenant, group_id) = (set.tenant, set.group_id);
    let mut out = json!({
        "id": set.id,
        "name": set.name,
        "runnerGroupId": set.group_id,
        "labels": set.labels.iter().map(|(t, n)| json!({"type": t, "name": n})).collect::<Vec<_>>(),
        "RunnerSetting": set.runner_setting,
        "createdOn": rfc3339(set.created_on),
        "runnerJitConfigUrl": format!("{base}_apis/runtime/runnerscalesets/{id}/generatejitconfig"),
        "statistics": statistics,
    });
    let scope = inner.broker.scope_of_tenant(tenant).cloned();
    if let Some(name) = scope.and_then(|s| group_name(inner, &s, group_id)) {
        out["runnerGroupName"] = json!(name);
    }
    out
}

/// A1 `GET runnerscalesets?runnerGroupId=&name=`: `{count, value}`.
pub(crate) fn list(inner: &mut Inner, tenant: usize, name: Option<&str>, group: Option<u64>, base: &str) -> Reply {
    let ids: Vec<u64> = inner
        .broker
        .sets
        .values()
        .filter(|s| s.tenant == tenant)
        .filter(|s| name.is_none_or(|n| s.name == n))
        .filter(|s| group.is_none_or(|g| s.group_id == g))
        .map(|s| s.id)
        .collect();
    let value: Vec<Value> = ids.into_iter().map(|id| set_json(inner, id, base)).collect();
    Reply::json(200, json!({"count": value.len(), "value": value}))
}

/// A2 `GET runnerscalesets/{id}`.
pub(crate) fn get(inner: &mut Inner, id: u64, base: &str) -> Reply {
    Reply::json(200, set_json(inner, id, base))
}

fn labels_of(body: &Value, name: &str) -> Vec<(String, String)> {
    let given: Vec<(String, String)> = field(body, "labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let name = field(l, "name")?.as_str()?.to_owned();
            let kind = field(l, "type").and_then(Value::as_str).filter(|t| !t.is_empty()).unwrap_or("System");
            Some((kind.to_owned(), name))
        })
        .collect();
    if given.is_empty() {
        vec![("System".into(), name.to_owned())]
    } else {
        given
    }
}

fn duplicate(inner: &Inner, tenant: usize, group: u64, name: &str, except: Option<u64>) -> bool {
    inner
        .broker
        .sets
        .values()
        .any(|s| s.tenant == tenant && s.group_id == group && s.name == name && Some(s.id) != except)
}

/// A3 `POST runnerscalesets`: 200 with the created set.
pub(crate) fn create(inner: &mut Inner, tenant: usize, scope: &Scope, body: Option<&Value>, base: &str) -> Reply {
    let Some(body) = body.filter(|b| b.is_object()) else { return error::bad_request("A scale set body is required.") };
    let Some(name) = field(body, "name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
        return error::bad_request("The runner scale set name is required.");
    };
    let group_id = field(body, "runnerGroupId").and_then(Value::as_u64).filter(|g| *g != 0).unwrap_or(1);
    let Some(group_name) = group_name(inner, scope, group_id) else {
        return error::bad_request(format!("Runner group {group_id} does not exist."));
    };
    if duplicate(inner, tenant, group_id, name, None) {
        return error::set_exists(&group_name);
    }
    inner.broker.next_set_id += 1;
    let id = inner.broker.next_set_id;
    let first_message_id = inner.broker.config.first_message_id;
    inner.broker.sets.insert(
        id,
        ScaleSet {
            id,
            tenant,
            name: name.to_owned(),
            group_id,
            labels: labels_of(body, name),
            runner_setting: field(body, "RunnerSetting").filter(|v| v.is_object()).cloned().unwrap_or(json!({})),
            created_on: OffsetDateTime::now_utc(),
            flow: None,
            max_capacity: None,
            idle_since: Instant::now(),
            queue: messages::Queue::starting_at(first_message_id),
        },
    );
    Reply::json(200, set_json(inner, id, base))
}

/// A4 `PATCH runnerscalesets/{id}`: only the fields given with a non-zero value change
/// (Go sends `"RunnerSetting":{}` and a zero `createdOn` in every body, §5.2).
pub(crate) fn update(inner: &mut Inner, id: u64, scope: &Scope, body: Option<&Value>, base: &str) -> Reply {
    let Some(body) = body.filter(|b| b.is_object()) else { return error::bad_request("A scale set body is required.") };
    let Some(set) = inner.broker.sets.get(&id) else { return error::set_not_found(id) };
    let (tenant, mut name, mut group_id) = (set.tenant, set.name.clone(), set.group_id);
    if let Some(n) = field(body, "name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        name = n.to_owned();
    }
    if let Some(g) = field(body, "runnerGroupId").and_then(Value::as_u64).filter(|g| *g != 0) {
        group_id = g;
    }
    let Some(group_name) = group_name(inner, scope, group_id) else {
        return error::bad_request(format!("Runner group {group_id} does not exist."));
    };
    if duplicate(inner, tenant, group_id, &name, Some(id)) {
        return error::set_exists(&group_name);
    }
    let labels =
        field(body, "labels").and_then(Value::as_array).filter(|l| !l.is_empty()).map(|_| labels_of(body, &name));
    let setting = field(body, "RunnerSetting").filter(|v| v.as_object().is_some_and(|o| !o.is_empty())).cloned();
    if let Some(set) = inner.broker.sets.get_mut(&id) {
        set.name = name;
        set.group_id = group_id;
        if let Some(labels) = labels {
            set.labels = labels;
        }
        if let Some(setting) = setting {
            set.runner_setting = setting;
        }
    }
    Reply::json(200, set_json(inner, id, base))
}

/// A5 `DELETE runnerscalesets/{id}`: 204, or 400 while a runner of the set runs a job.
pub(crate) fn delete(inner: &mut Inner, id: u64) -> Reply {
    let busy = inner.runners.runners.values().find(|r| r.scale_set_id == Some(id) && r.busy());
    if let Some(runner) = busy {
        let name = runner.name.clone();
        return error::job_still_running(&name);
    }
    remove(inner, id);
    Reply::empty(204)
}

/// The set goes with its session, its queue and its runners that run nothing; jobs it had
/// but had not started go back to the tenant's queue (the ADR: "thrown back to the queue").
pub(crate) fn remove(inner: &mut Inner, id: u64) -> bool {
    if inner.broker.sets.remove(&id).is_none() {
        return false;
    }
    inner.broker.sessions.remove(&id);
    let idle: Vec<u64> =
        inner.runners.runners.values().filter(|r| r.scale_set_id == Some(id) && !r.busy()).map(|r| r.id).collect();
    for runner in idle {
        let scope = inner.runners.runners.get(&runner).map(|r| r.scope.clone());
        if let Some(scope) = scope {
            let _ = inner.runners.delete(&scope, runner);
        }
    }
    jobs::requeue_set(inner, id);
    true
}

/// A6 `GET runnergroups/?groupName=`: `{count, value}`, `{count:0,value:[]}` when none matches.
pub(crate) fn runner_groups(inner: &mut Inner, scope: &Scope, name: Option<&str>) -> Reply {
    let value: Vec<Value> = groups(inner, scope)
        .into_iter()
        .filter(|g| name.is_none_or(|n| g.name.eq_ignore_ascii_case(n)))
        .map(|g| {
            let size =
                inner.runners.runners.values().filter(|r| &r.scope == scope && r.runner_group_id == g.id).count();
            json!({"id": g.id, "name": g.name, "size": size, "isDefaultGroup": g.default})
        })
        .collect();
    Reply::json(200, json!({"count": value.len(), "value": value}))
}

/// Deletes the sets that had no session for `dormant_after`; returns when the next one would go.
pub(crate) fn delete_dormant(inner: &mut Inner, now: Instant) -> Option<Instant> {
    let after = inner.broker.config.dormant_after?;
    let idle: Vec<(u64, Instant)> = inner
        .broker
        .sets
        .values()
        .filter(|s| !inner.broker.sessions.contains_key(&s.id))
        .map(|s| (s.id, s.idle_since + after))
        .collect();
    let mut next = None;
    for (id, due) in idle {
        if due <= now {
            remove(inner, id);
        } else {
            next = Some(next.map_or(due, |n: Instant| n.min(due)));
        }
    }
    next
}
