//! The one error shape of the Actions service: `{"typeName","message"}` as
//! `application/json` (PROTOCOL.md §2.5). Clients match `typeName` by substring, so the
//! names below are the ones observed (assembly-qualified where a log showed it so).

use serde_json::json;

use super::http::Reply;

const RUNTIME: &str = "GitHub.Actions.Runtime.WebApi";

/// `GitHub.Actions.Runtime.WebApi.<name>, GitHub.Actions.Runtime.WebApi`, as ARC#4285 logged.
fn qualified(name: &str) -> String {
    format!("{RUNTIME}.{name}, {RUNTIME}")
}

pub(crate) fn error(status: u16, type_name: &str, message: impl Into<String>) -> Reply {
    Reply::json(status, json!({"typeName": type_name, "message": message.into()}))
}

pub(crate) fn unauthorized(message: &str) -> Reply {
    error(401, "VssUnauthorizedException", message)
}

pub(crate) fn bad_request(message: impl Into<String>) -> Reply {
    error(400, "ArgumentException", message)
}

pub(crate) fn not_found_route() -> Reply {
    error(404, "VssResourceNotFoundException", "The requested resource does not exist.")
}

pub(crate) fn set_not_found(id: u64) -> Reply {
    error(404, &qualified("RunnerScaleSetNotFoundException"), format!("The runner scale set {id} does not exist."))
}

/// The typeName for a duplicate set is not known (PROTOCOL.md §5.4 has only the message);
/// this one is the fake's invention, the message is the observed text.
pub(crate) fn set_exists(group_name: &str) -> Reply {
    error(
        400,
        &qualified("RunnerScaleSetExistsException"),
        format!("The runner scale set already exists in runner group {group_name}."),
    )
}

pub(crate) fn session_conflict(set_name: &str) -> Reply {
    error(
        409,
        &qualified("RunnerScaleSetSessionConflictException"),
        format!("The actions runner scaleset {set_name} already has an active session."),
    )
}

pub(crate) fn session_expired(session_id: &str) -> Reply {
    error(
        400,
        &qualified("RunnerScaleSetSessionExpiredException"),
        format!("The session identifier {session_id} is not valid."),
    )
}

pub(crate) fn session_evicted() -> Reply {
    error(404, "RunnerAdminException", "runner referenced a session ID that doesn't exist in redis")
}

pub(crate) fn agent_exists(name: &str) -> Reply {
    error(409, "AgentExistsException", format!("A runner with the name {name} already exists."))
}

pub(crate) fn agent_not_found(id: u64) -> Reply {
    error(404, "AgentNotFoundException", format!("Runner {id} was not found."))
}

pub(crate) fn job_still_running(name: &str) -> Reply {
    error(
        400,
        "JobStillRunningException",
        format!("Can't remove runner {name} at this point since it has been assigned to a job request."),
    )
}
