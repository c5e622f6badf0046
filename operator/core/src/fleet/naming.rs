//! Runner names are `<computer name>-<6 lowercase hex>`: unique for every boot (a new
//! registration never collides with a runner GitHub still lists), and they say which VM
//! a runner belongs to. Registration, recovery and the GitHub alignment all go through
//! these functions.

use crate::ports::{Runner, RunnerStatus};

const RUNNER_SUFFIX_LEN: usize = 6;

/// A fresh runner name for a boot of `computer_name`. The suffix is random (not I/O:
/// a uuid drawn from the process's generator), so two boots never share a name.
pub fn new_runner_name(computer_name: &str) -> String {
    format!("{computer_name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..RUNNER_SUFFIX_LEN])
}

/// The computer name a runner of ours runs on; `None` for runners of any other naming.
pub fn runner_vm_name(runner_name: &str) -> Option<&str> {
    runner_name
        .rsplit_once('-')
        .filter(|(_, suffix)| {
            suffix.len() == RUNNER_SUFFIX_LEN
                && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .map(|(vm, _)| vm)
}

/// The runner of the VM named `vm_name` among GitHub's `runners`: the busy one, else an
/// online one, else any (a runner of an earlier boot may still be listed beside it).
pub fn runner_of_vm<'a>(runners: &'a [Runner], vm_name: &str) -> Option<&'a Runner> {
    let mut ours = runners.iter().filter(|r| runner_vm_name(&r.name) == Some(vm_name));
    let first = ours.clone().next();
    ours.clone().find(|r| r.busy).or_else(|| ours.find(|r| r.status == RunnerStatus::Online)).or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_names_lead_back_to_their_vm() {
        let name = new_runner_name("vmssrun000017");
        assert_eq!(runner_vm_name(&name), Some("vmssrun000017"));
        assert_eq!(runner_vm_name("my-laptop"), None, "not our naming");
        assert_eq!(runner_vm_name("vmssrun000017-ZZZZZZ"), None);
    }
}
