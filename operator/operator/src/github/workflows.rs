//! Workflow history (`operator trace export`): a repository's runs and their jobs.

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::GithubClient;
use crate::ports::GithubError;

/// One job of a workflow run, as `operator trace export` keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WorkflowJob {
    pub id: u64,
    pub run_id: u64,
    pub name: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct WireRunPage {
    workflow_runs: Vec<WireRun>,
}

#[derive(Deserialize)]
struct WireRun {
    id: u64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Deserialize)]
struct WireJobPage {
    jobs: Vec<WorkflowJob>,
}

/// Workflow history (`operator trace export`), every page followed.
impl GithubClient {
    /// `repository`'s workflow runs created at or after `since`, as (id, created), newest
    /// first. GitHub lists runs newest first; paging stops at the first page that
    /// reaches back before `since`. (No `created` filter: GitHub caps a filtered listing
    /// at 1,000 runs, and its description types the filter as one date-time.)
    pub async fn workflow_runs_since(
        &self,
        repository: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<(u64, OffsetDateTime)>, GithubError> {
        let url = format!("{}/repos/{repository}/actions/runs?per_page=100", self.api);
        let unreadable = |e: serde_json::Error| GithubError::Server {
            status: 200,
            message: format!("unreadable workflow runs: {e}"),
        };
        let reaches_back = |page: &Value| {
            serde_json::from_value::<WireRunPage>(page.clone())
                .map(|p| p.workflow_runs.iter().any(|r| r.created_at < since) || p.workflow_runs.is_empty())
                .unwrap_or(true)
        };
        let mut runs = Vec::new();
        for page in self.list_while(url, &|page| !reaches_back(page)).await? {
            let page: WireRunPage = serde_json::from_value(page).map_err(unreadable)?;
            runs.extend(page.workflow_runs.into_iter().filter(|r| r.created_at >= since).map(|r| (r.id, r.created_at)));
        }
        Ok(runs)
    }

    /// The jobs of one workflow run (its latest attempt).
    pub async fn workflow_jobs(&self, repository: &str, run_id: u64) -> Result<Vec<WorkflowJob>, GithubError> {
        let url = format!("{}/repos/{repository}/actions/runs/{run_id}/jobs?per_page=100", self.api);
        let mut jobs = Vec::new();
        for page in self.list_all(url).await? {
            let page: WireJobPage = serde_json::from_value(page)
                .map_err(|e| GithubError::Server { status: 200, message: format!("unreadable workflow jobs: {e}") })?;
            jobs.extend(page.jobs);
        }
        Ok(jobs)
    }
}
