//! The job fields of a hook body, checked as GitHub forms them: a runner VM's job is
//! untrusted, and these strings reach the busy record, log lines and GitHub look-ups.

use super::ApiError;
use crate::model::JobRef;

/// Longest repository owner (a GitHub login) and name.
const MAX_OWNER: usize = 39;
const MAX_NAME: usize = 100;
/// Longest job id (`GITHUB_JOB`, a workflow's job key).
const MAX_JOB_NAME: usize = 100;

/// `job` is well formed and its repository is `scope` (repository scope) or one of the
/// organization `scope`'s (organization scope). Compared without regard to case, as GitHub does.
pub fn job(job: &JobRef, scope: &str, organization_scope: bool) -> Result<(), ApiError> {
    let invalid = |field, reason: &str| ApiError::InvalidField { field, reason: reason.to_owned() };
    let Some((owner, name)) = job.repository.split_once('/') else {
        return Err(invalid("repository", "must be owner/name"));
    };
    if owner.is_empty() || owner.len() > MAX_OWNER || !owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid("repository", "the owner must be 1-39 letters, digits or '-'"));
    }
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid("repository", "the name must be 1-100 letters, digits, '-', '_' or '.'"));
    }
    if job.job_name.is_empty()
        || job.job_name.len() > MAX_JOB_NAME
        || !job.job_name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid("job_name", "must be 1-100 letters, digits, '-', '_' or '.' (a workflow job id)"));
    }
    if job.run_id == 0 {
        return Err(invalid("run_id", "must be at least 1"));
    }
    if job.run_attempt == 0 {
        return Err(invalid("run_attempt", "must be at least 1"));
    }
    let inside =
        if organization_scope { owner.eq_ignore_ascii_case(scope) } else { job.repository.eq_ignore_ascii_case(scope) };
    if !inside {
        return Err(ApiError::OutOfScope { repository: job.repository.clone(), scope: scope.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_of(repository: &str, job_name: &str) -> JobRef {
        JobRef { repository: repository.into(), run_id: 1, run_attempt: 1, job_name: job_name.into() }
    }

    #[test]
    fn a_job_of_the_scoped_repository_passes_in_any_case() {
        assert!(job(&job_of("Octo-Org/octo.repo", "build_1"), "octo-org/Octo.Repo", false).is_ok());
        assert!(job(&job_of("octo-org/anything", "test"), "Octo-Org", true).is_ok());
    }

    #[test]
    fn a_repository_outside_the_scope_is_refused() {
        let err = job(&job_of("evil/octo-repo", "build"), "octo-org/octo-repo", false).unwrap_err();
        assert!(matches!(err, ApiError::OutOfScope { .. }), "{err}");
        let err = job(&job_of("evil/x", "build"), "octo-org", true).unwrap_err();
        assert!(matches!(err, ApiError::OutOfScope { .. }), "{err}");
    }

    #[test]
    fn malformed_fields_are_refused_by_name() {
        let field_of = |j: JobRef| match job(&j, "o/r", false) {
            Err(ApiError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field_of(job_of("o/r", "build\nFAKE LOG LINE")), "job_name");
        assert_eq!(field_of(job_of("o/r", &"x".repeat(101))), "job_name");
        assert_eq!(field_of(job_of("o/r", "")), "job_name");
        assert_eq!(field_of(job_of("no-slash", "b")), "repository");
        assert_eq!(field_of(job_of("o/r/extra", "b")), "repository");
        assert_eq!(field_of(job_of(&format!("o/{}", "x".repeat(16 * 1024)), "b")), "repository");
        assert_eq!(field_of(JobRef { run_id: 0, ..job_of("o/r", "b") }), "run_id");
        assert_eq!(field_of(JobRef { run_attempt: 0, ..job_of("o/r", "b") }), "run_attempt");
    }
}
