//! The closed vocabularies the operator counts and logs in: each is an enum with
//! `as_str()` (the metric label value) and `ALL` (so every series starts at zero),
//! the pattern of [`crate::model::InstanceState`]. A new variant is a compile error
//! wherever it is not handled, never a label that silently never appears.

/// Declares a label enum: `Variant => "label"`, plus `as_str`, `ALL` and `Display`.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// The requests a runner VM makes (`vmss_runner_hooks_total{kind}`).
    HookKind {
        Registration => "registration",
        JobStarted => "job_started",
        JobCompleted => "job_completed",
        RunnerExited => "runner_exited",
    }
}

label_enum! {
    /// The operator's dependencies, for `vmss_runner_cloud_api_errors_total{api}`.
    Api {
        ScaleSet => "scale_set",
        Github => "github",
        /// GitHub's runner scale set API (the Actions service).
        ScaleSetApi => "scale_set_api",
        BusyRecord => "busy_record",
    }
}

label_enum! {
    /// What the operator does to the scale set and to GitHub's runners
    /// (`vmss_runner_scale_operations_total{kind}`).
    OperationKind {
        SetCapacity => "set_capacity",
        Reimage => "reimage",
        Delete => "delete",
        /// Deallocate VMs told to park (`POST {vmss}/deallocate`).
        Park => "park",
        /// Start parked VMs on demand (`POST {vmss}/start`).
        Start => "start",
        Deregister => "deregister",
    }
}

label_enum! {
    /// How an operation ended (`vmss_runner_scale_operations_total{outcome}`).
    OperationOutcome {
        Ok => "ok",
        Failed => "failed",
        /// GitHub refused to remove a runner because it runs a job: the instance stays.
        RefusedBusy => "refused_busy",
    }
}

label_enum! {
    /// Repairs of the operator's picture (`vmss_runner_corrections_total{kind}`): the
    /// corrections derived from GitHub's runner list ([`crate::truth::Correction`]) and
    /// the busy-record clean-ups of the pass and the audit.
    CorrectionKind {
        RunnerIdLearned => "runner_id_learned",
        RunnerOnline => "runner_online",
        RunnerGone => "runner_gone",
        RunnerOffline => "runner_offline",
        JobStartedLost => "job_started_lost",
        RunnerAdopted => "runner_adopted",
        RunnerIdentified => "runner_identified",
        BusyUnconfirmed => "busy_unconfirmed",
        GhostDeregistered => "ghost_deregistered",
        /// A VM someone else stopped with a runner: marker removed, runner deregistered,
        /// the VM moved to the reserve.
        StoppedReclaimed => "stopped_reclaimed",
        OrphanMarkerRemoved => "orphan_marker_removed",
        UntrackedMarkerRemoved => "untracked_marker_removed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_listed_once_and_spelled_in_snake_case() {
        fn check(labels: &[&str]) {
            let mut seen = std::collections::BTreeSet::new();
            for label in labels {
                assert!(seen.insert(*label), "{label} listed twice");
                assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{label} is not snake_case");
            }
        }
        check(&HookKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        check(&Api::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        check(&OperationKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        check(&OperationOutcome::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        check(&CorrectionKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        assert_eq!(CorrectionKind::ALL.len(), 12);
    }
}
