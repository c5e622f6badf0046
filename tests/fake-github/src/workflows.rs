//! Workflow runs and their jobs, for `operator trace export`: `GET
//! /repos/{owner}/{repo}/actions/runs` (with `created=YYYY-MM-DD..YYYY-MM-DD`) and `GET
//! /repos/{owner}/{repo}/actions/runs/{run_id}/jobs`, paginated, with every field
//! GitHub's description requires.

use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, Date, OffsetDateTime};

/// One job of a workflow run, as the test sets it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeWorkflowJob {
    pub name: String,
    pub labels: Vec<String>,
    pub created_at: OffsetDateTime,
    pub started_at: OffsetDateTime,
    pub completed_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub(crate) struct WorkflowRun {
    pub id: u64,
    pub repository: String,
    pub created_at: OffsetDateTime,
    pub jobs: Vec<(u64, FakeWorkflowJob)>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default()
}

/// `created=A..B`, `created=A` (dates, inclusive); anything else matches every run.
pub(crate) fn created_matches(filter: Option<&String>, at: OffsetDateTime) -> bool {
    let Some(filter) = filter else { return true };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let parse = |s: &str| Date::parse(s, &fmt).ok();
    let (from, to) = match filter.split_once("..") {
        Some((a, b)) => (parse(a), parse(b)),
        None => (parse(filter), parse(filter)),
    };
    from.is_none_or(|d| at.date() >= d) && to.is_none_or(|d| at.date() <= d)
}

fn repository_json(full_name: &str, owner: Value, base_url: &str) -> Value {
    let name = full_name.split('/').nth(1).unwrap_or(full_name);
    let u = format!("{base_url}/repos/{full_name}");
    let mut repo = json!({
        "id": 4242, "node_id": "R_kgDOfake", "name": name, "full_name": full_name, "owner": owner,
        "private": false, "fork": false, "description": null,
        "html_url": format!("https://github.com/{full_name}"), "url": u,
    });
    let templated = [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("hooks_url", "/hooks"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        ("notifications_url", "/notifications{?since,all,participating}"),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
    ];
    for (key, suffix) in templated {
        repo[key] = json!(format!("{u}{suffix}"));
    }
    repo
}

pub(crate) fn run_json(run: &WorkflowRun, owner: Value, base_url: &str) -> Value {
    let repo = repository_json(&run.repository, owner, base_url);
    let u = format!("{base_url}/repos/{}/actions/runs/{}", run.repository, run.id);
    let at = rfc3339(run.created_at);
    let person = json!({"name": "Octo Cat", "email": "octocat@example.com"});
    json!({
        "id": run.id, "node_id": format!("WFR_fake{}", run.id), "name": "CI", "head_branch": "main",
        "head_sha": "0123456789abcdef0123456789abcdef01234567", "path": ".github/workflows/ci.yml",
        "display_title": "CI", "run_number": run.id, "event": "push", "status": "completed",
        "conclusion": "success", "workflow_id": 7, "url": u,
        "html_url": format!("https://github.com/{}/actions/runs/{}", run.repository, run.id),
        "pull_requests": [], "created_at": at, "updated_at": at,
        "jobs_url": format!("{u}/jobs"), "logs_url": format!("{u}/logs"),
        "check_suite_url": format!("{base_url}/repos/{}/check-suites/{}", run.repository, run.id),
        "artifacts_url": format!("{u}/artifacts"), "cancel_url": format!("{u}/cancel"),
        "rerun_url": format!("{u}/rerun"),
        "workflow_url": format!("{base_url}/repos/{}/actions/workflows/7", run.repository),
        "head_commit": {
            "id": "0123456789abcdef0123456789abcdef01234567", "tree_id": "89abcdef0123456789abcdef0123456789abcdef",
            "message": "a commit", "timestamp": at, "author": person, "committer": person,
        },
        "repository": repo, "head_repository": repo,
    })
}

pub(crate) fn job_json(run: &WorkflowRun, id: u64, job: &FakeWorkflowJob, base_url: &str) -> Value {
    let r = &run.repository;
    json!({
        "id": id, "run_id": run.id, "run_url": format!("{base_url}/repos/{r}/actions/runs/{}", run.id),
        "node_id": format!("CR_fake{id}"), "head_sha": "0123456789abcdef0123456789abcdef01234567",
        "url": format!("{base_url}/repos/{r}/actions/jobs/{id}"),
        "html_url": format!("https://github.com/{r}/actions/runs/{}/job/{id}", run.id),
        "status": "completed", "conclusion": "success", "created_at": rfc3339(job.created_at),
        "started_at": rfc3339(job.started_at), "completed_at": rfc3339(job.completed_at), "name": job.name,
        "check_run_url": format!("{base_url}/repos/{r}/check-runs/{id}"), "labels": job.labels,
        "runner_id": 1, "runner_name": "runner-1", "runner_group_id": 1, "runner_group_name": "Default",
        "workflow_name": "CI", "head_branch": "main",
    })
}
