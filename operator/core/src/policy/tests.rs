use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn does_nothing(d: &Decision) -> bool {
    d.capacity.is_none() && d.reimage.is_empty() && d.delete.is_empty()
}
use crate::model::InstanceState::{self, *};

fn spec(min: u32, max: u32, pct: u8) -> PoolSpec {
    PoolSpec {
        min,
        max,
        free_target_percentage: pct,
        parked: 0,
        scale_in_delay: Duration::from_secs(300),
        registration_timeout: Duration::from_secs(600),
        runner_exit_timeout: Duration::from_secs(600),
        keep_unhealthy: false,
    }
}

fn inst(id: u32, state: InstanceState, secs: u64) -> ObservedInstance {
    ObservedInstance {
        id: InstanceId::new(id.to_string()),
        state,
        in_state_for: Duration::from_secs(secs),
        latest_model: true,
    }
}

fn pool(states: &[InstanceState]) -> ObservedPool {
    let instances: Vec<_> = states.iter().enumerate().map(|(i, s)| inst(i as u32, *s, 0)).collect();
    let capacity = states.iter().filter(|s| **s != Deleting).count() as u32;
    ObservedPool { capacity, instances, assigned_jobs: None }
}

fn ids(list: &[u32]) -> Vec<InstanceId> {
    list.iter().map(|i| InstanceId::new(i.to_string())).collect()
}

#[test]
fn required_free_is_the_ceiling_of_the_ratio() {
    assert_eq!(required_free(0, 25), 0);
    assert_eq!(required_free(6, 25), 2); // 2 of 8 = 25 %
    assert_eq!(required_free(5, 25), 2); // ceil(1.67)
    assert_eq!(required_free(1, 50), 1);
    assert_eq!(required_free(3, 0), 0);
    assert_eq!(required_free(1, 99), 99);
}

#[test]
fn empty_pool_scales_out_to_min() {
    let d = decide(&spec(2, 10, 25), &ObservedPool::default());
    assert_eq!(d.capacity, Some(2));
    assert_eq!(d.target.desired, 2);
}

#[test]
fn busy_pool_scales_out_to_keep_the_free_target() {
    // The worked example of docs/scaling-policy.md: 6 busy, 0 free, 25 % -> 8.
    let d = decide(&spec(1, 20, 25), &pool(&[Busy; 6]));
    assert_eq!(d.target.free_wanted, 2);
    assert_eq!(d.capacity, Some(8));
}

#[test]
fn unlisted_capacity_counts_as_free_so_a_burst_does_not_scale_twice() {
    let mut p = pool(&[Busy; 6]);
    p.capacity = 8; // two instances accepted by Azure, not listed yet
    assert!(does_nothing(&decide(&spec(1, 20, 25), &p)));
}

#[test]
fn scale_out_stops_at_max() {
    let d = decide(&spec(1, 7, 25), &pool(&[Busy; 6]));
    assert_eq!(d.capacity, Some(7));
    let d = decide(&spec(1, 6, 25), &pool(&[Busy; 6]));
    assert_eq!(d.capacity, None);
}

#[test]
fn completed_job_on_busy_pool_reimages_instead_of_deleting() {
    let d = decide(&spec(1, 10, 50), &pool(&[Busy, Busy, Recyclable]));
    assert_eq!(d.reimage, ids(&[2]));
    assert!(d.delete.is_empty());
}

#[test]
fn completed_job_on_quiet_pool_deletes_the_instance() {
    let d = decide(&spec(1, 10, 25), &pool(&[Idle, Idle, Recyclable]));
    assert_eq!(d.delete, ids(&[2]));
    assert!(d.reimage.is_empty());
}

#[test]
fn completed_job_at_exactly_the_target_is_reimaged_to_keep_headroom() {
    // One free instance wanted and one free: deleting would leave the next job to
    // wait for a VM the pool just threw away. The spare goes after the scale-in delay.
    let d = decide(&spec(1, 10, 25), &pool(&[Idle, Recyclable]));
    assert_eq!(d.reimage, ids(&[1]));
    assert!(d.delete.is_empty());
}

#[test]
fn completed_job_never_takes_the_pool_below_min() {
    let d = decide(&spec(2, 10, 0), &pool(&[Idle, Idle, Busy, Recyclable]));
    assert_eq!(d.delete, ids(&[3]), "above min and above target: delete");
    let d = decide(&spec(4, 10, 0), &pool(&[Idle, Idle, Busy, Recyclable]));
    assert_eq!(d.reimage, ids(&[3]), "deleting would go below min: reimage");
}

#[test]
fn retiring_instance_waits_for_runner_exit() {
    let p =
        ObservedPool { capacity: 2, instances: vec![inst(0, Idle, 0), inst(1, Retiring, 599)], assigned_jobs: None };
    assert!(does_nothing(&decide(&spec(1, 10, 25), &p)), "never act from inside the completed hook");
    let p =
        ObservedPool { capacity: 2, instances: vec![inst(0, Idle, 0), inst(1, Retiring, 600)], assigned_jobs: None };
    assert_eq!(decide(&spec(1, 10, 25), &p).reimage, ids(&[1]), "after the exit timeout the VM is recycled");
}

#[test]
fn idle_instance_above_target_is_deleted_only_after_the_scale_in_delay() {
    let young = ObservedPool {
        capacity: 3,
        instances: vec![inst(0, Idle, 10), inst(1, Idle, 299), inst(2, Idle, 5)],
        assigned_jobs: None,
    };
    assert!(does_nothing(&decide(&spec(1, 10, 25), &young)));
    let old = ObservedPool {
        capacity: 3,
        instances: vec![inst(0, Idle, 10), inst(1, Idle, 300), inst(2, Idle, 900)],
        assigned_jobs: None,
    };
    let d = decide(&spec(1, 10, 25), &old);
    assert_eq!(d.delete, ids(&[2, 1]), "longest idle first, down to min");
}

#[test]
fn scale_out_never_waits_for_the_scale_in_delay() {
    let d = decide(&spec(1, 10, 50), &pool(&[Busy, Busy, Busy]));
    assert_eq!(d.capacity, Some(6));
}

#[test]
fn idle_instances_beyond_max_go_at_once() {
    let p = ObservedPool { capacity: 4, instances: (0..4).map(|i| inst(i, Idle, 0)).collect(), assigned_jobs: None };
    let d = decide(&spec(1, 2, 25), &p);
    assert_eq!(d.delete.len(), 2);
}

#[test]
fn failed_instance_is_deleted_and_replaced() {
    let d = decide(&spec(2, 10, 0), &pool(&[Idle, Failed]));
    assert_eq!(d.delete, ids(&[1]));
    assert_eq!(d.capacity, Some(2), "capacity is set after the delete, back to min");
}

#[test]
fn runner_that_never_registers_is_replaced_after_the_timeout() {
    let p = ObservedPool { capacity: 1, instances: vec![inst(0, AwaitingRegistration, 601)], assigned_jobs: None };
    let d = decide(&spec(1, 10, 0), &p);
    assert_eq!(d.delete, ids(&[0]));
    assert_eq!(d.capacity, Some(1));
}

#[test]
fn instances_under_operation_are_left_alone() {
    let p = ObservedPool {
        capacity: 2,
        instances: vec![inst(0, Reimaging, 9999), inst(1, Deleting, 9999), inst(2, Provisioning, 9999)],
        assigned_jobs: None,
    };
    let d = decide(&spec(1, 10, 0), &p);
    assert!(d.delete.is_empty() && d.reimage.is_empty(), "{d:?}");
}

#[test]
fn a_deallocated_instance_is_neither_free_nor_busy_and_the_pool_scales_out_past_it() {
    // min 2, no demand source: two deallocated VMs hold slots but serve nothing.
    let d = decide(&spec(2, 10, 0), &pool(&[Deallocated, Deallocated]));
    assert_eq!(d.capacity, Some(4), "two running VMs are added beside them");
    assert_eq!((d.target.free, d.target.busy, d.target.size), (2, 0, 2), "free counts only the added two");
    assert!(d.delete.is_empty() && d.reimage.is_empty(), "{d:?}");
}

#[test]
fn a_deallocated_instance_is_never_recycled_or_scaled_in_below_max() {
    let mut p = pool(&[Idle, Idle, Idle, Deallocated]);
    for i in &mut p.instances {
        i.in_state_for = Duration::from_secs(9999);
    }
    let d = decide(&spec(1, 10, 0), &p);
    assert!(!d.delete.contains(&InstanceId::new("3")), "{d:?}");
    assert!(!d.reimage.contains(&InstanceId::new("3")), "{d:?}");
}

#[test]
fn above_max_a_deallocated_instance_goes_before_an_idle_one() {
    let d = decide(&spec(1, 2, 0), &pool(&[Idle, Idle, Deallocated]));
    assert_eq!(d.delete, ids(&[2]));
    assert_eq!(d.target.size_after, 2);
}

// ---- properties -------------------------------------------------------------

fn any_state() -> impl Strategy<Value = InstanceState> {
    prop::sample::select(InstanceState::ALL.to_vec())
}

prop_compose! {
    /// A pool in any state, with (`min` from 0) or without (`min` from 1, as the
    /// configuration requires) a demand source.
    fn any_case()(min in 0u32..8, extra in 0u32..12, pct in 0u8..100, parked in 0u32..6,
                 states in prop::collection::vec((any_state(), 0u64..2000), 0..30),
                 unlisted in 0u32..4,
                 assigned in prop::option::of(0u32..40))
                -> (PoolSpec, ObservedPool) {
        let min = if assigned.is_none() { min.max(1) } else { min };
        let s = PoolSpec { parked, ..spec(min, min + extra, pct) };
        let instances: Vec<_> = states.iter().enumerate()
            .map(|(i, (st, age))| inst(i as u32, *st, *age)).collect();
        let listed = instances.iter().filter(|i| i.state != Deleting).count() as u32;
        (s, ObservedPool { capacity: listed + unlisted, instances, assigned_jobs: assigned })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_grows_above_max((s, p) in any_case()) {
        let d = decide(&s, &p);
        if let Some(c) = d.capacity {
            prop_assert!(c <= s.max, "capacity {c} > max {}", s.max);
            prop_assert!(c > d.target.size - d.delete.len() as u32, "capacity only ever grows the pool");
        }
        prop_assert!(d.target.size_after <= s.max.max(d.target.size - d.delete.len() as u32));
    }

    #[test]
    fn never_shrinks_below_min((s, p) in any_case()) {
        let d = decide(&s, &p);
        prop_assert!(d.target.size_after >= s.min, "{:?}", d.target);
    }

    #[test]
    fn never_touches_a_busy_or_still_running_instance((s, p) in any_case()) {
        let d = decide(&s, &p);
        for id in d.delete.iter().chain(&d.reimage) {
            let i = p.instances.iter().find(|i| &i.id == id).unwrap();
            prop_assert!(i.state != Busy, "acted on busy {id}");
            prop_assert!(!(i.state == Retiring && i.in_state_for < s.runner_exit_timeout), "acted on {id} before runner exit");
            prop_assert!(i.state != Provisioning, "acted on provisioning {id}");
        }
    }

    #[test]
    fn a_deallocated_instance_is_only_ever_deleted_and_only_above_max((s, p) in any_case()) {
        let d = decide(&s, &p);
        let deallocated = |id: &InstanceId| p.instances.iter().any(|i| &i.id == id && i.state == Deallocated);
        prop_assert!(!d.reimage.iter().any(deallocated), "reimaged a deallocated instance");
        if d.delete.iter().any(deallocated) {
            prop_assert!(d.target.size > s.max, "deleted a deallocated instance at or below max: {:?}", d.target);
        }
    }

    #[test]
    fn never_acts_twice_or_on_an_instance_already_under_operation((s, p) in any_case()) {
        let d = decide(&s, &p);
        let mut all: Vec<_> = d.delete.iter().chain(&d.reimage).chain(&d.park).chain(&d.start).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        prop_assert_eq!(all.len(), n, "one instance in two actions");
        for id in d.delete.iter().chain(&d.reimage).chain(&d.start) {
            let i = p.instances.iter().find(|i| &i.id == id).unwrap();
            prop_assert!(!i.state.is_in_operation(), "{id} already {:?}", i.state);
        }
    }

    #[test]
    fn only_parked_instances_start_and_only_those_told_to_park_are_deallocated((s, p) in any_case()) {
        let d = decide(&s, &p);
        let state = |id: &InstanceId| p.instances.iter().find(|i| &i.id == id).unwrap().state;
        prop_assert!(d.start.iter().all(|id| state(id) == Parked), "{:?}", d.start);
        prop_assert!(d.park.iter().all(|id| state(id) == Parking), "{:?}", d.park);
        prop_assert!(d.reimage.iter().all(|id| !state(id).is_parked()), "a parked VM is started, not reimaged");
        // Starts serve demand: none while the free target is met without them.
        prop_assert!(d.start.len() as u32 <= d.target.free_wanted, "started more than needed: {:?}", d.target);
    }

    #[test]
    fn the_reserve_never_takes_the_pool_above_max_or_the_running_pool_below_its_target((s, p) in any_case()) {
        let d = decide(&s, &p);
        prop_assert!(d.target.desired + d.target.parked_wanted <= s.max.max(s.min), "{:?}", d.target);
        if d.target.size_after < s.max {
            prop_assert!(d.target.free >= d.target.free_wanted, "parking came before serving demand: {:?}", d.target);
        }
    }

    #[test]
    fn a_vm_is_told_to_park_only_when_the_reserve_is_short_and_the_free_target_holds_without_it((s, p) in any_case()) {
        let d = decide(&s, &p);
        for inst in p.instances.iter().filter(|i| i.state == AwaitingRegistration) {
            if registration_answer(&s, &p, &inst.id) == RegistrationAnswer::Park {
                prop_assert!(d.target.parked < d.target.parked_wanted || !d.start.is_empty(), "{:?}", d.target);
                prop_assert!(inst.latest_model);
            }
        }
    }

    #[test]
    fn reaches_the_free_target_when_max_allows((s, p) in any_case()) {
        let d = decide(&s, &p);
        if d.target.size_after < s.max {
            prop_assert!(d.target.free >= d.target.free_wanted, "{:?}", d.target);
        }
    }

    #[test]
    fn covers_every_assigned_job_when_max_allows((s, p) in any_case()) {
        let d = decide(&s, &p);
        if let Some(assigned) = p.assigned_jobs {
            let waiting = assigned.saturating_sub(d.target.busy);
            if d.target.size_after < s.max {
                prop_assert!(d.target.free >= waiting, "{waiting} waiting jobs, {:?}", d.target);
            }
            prop_assert!(d.target.demand >= assigned.max(d.target.busy));
        } else {
            prop_assert_eq!(d.target.demand, d.target.busy, "no demand source: only busy runners count");
        }
    }

    #[test]
    fn deciding_again_on_the_result_does_not_flap((s, p) in any_case()) {
        // Apply the decision the way the cloud would and decide again: no new scale-out.
        let d = decide(&s, &p);
        let mut next = p.clone();
        next.instances.retain(|i| !d.delete.contains(&i.id));
        for i in &mut next.instances {
            if d.reimage.contains(&i.id) { i.state = Reimaging; }
            if d.start.contains(&i.id) { i.state = Starting; }
        }
        next.capacity = d.capacity.unwrap_or(d.target.size - d.delete.len() as u32);
        let again = decide(&s, &next);
        prop_assert_eq!(again.capacity, None, "second pass scaled out again: {:?} then {:?}", d.target, again.target);
    }
}

#[test]
fn worked_example_of_the_docs() {
    let s = spec(2, 10, 25);
    // Six busy, nothing free: 6 -> 8.
    assert_eq!(decide(&s, &pool(&[Busy; 6])).capacity, Some(8));
    // A seventh job takes a free one: 8 -> 10.
    let mut states = vec![Busy; 7];
    states.push(Idle);
    assert_eq!(decide(&s, &pool(&states)).capacity, Some(10));
    // Three jobs finish: 4 busy, 3 free, 3 recyclable -> all three deleted, pool of 7.
    let states = [Busy, Busy, Busy, Busy, Idle, Idle, Idle, Recyclable, Recyclable, Recyclable];
    let d = decide(&s, &pool(&states));
    assert_eq!(d.delete, ids(&[7, 8, 9]));
    assert_eq!((d.target.free_wanted, d.target.size_after), (2, 7));
}

#[test]
fn a_finished_instance_on_an_old_model_is_deleted_and_replaced_instead_of_reimaged() {
    let mut p = pool(&[Busy, Busy, Recyclable]);
    p.instances[2].latest_model = false;
    let d = decide(&spec(1, 4, 50), &p);
    assert!(d.reimage.is_empty(), "{d:?}");
    assert_eq!(d.delete, ids(&[2]));
    assert!(d.capacity.is_some_and(|c| c >= 3), "replaced from the current model: {d:?}");

    // The same pool on the current model reimages it.
    assert_eq!(decide(&spec(1, 4, 50), &pool(&[Busy, Busy, Recyclable])).reimage, ids(&[2]));
}

#[test]
fn an_empty_pool_with_demand_scales_out_to_every_assigned_job_in_one_step() {
    let mut p = pool(&[]);
    p.assigned_jobs = Some(12);
    // min 0, free target 20 %: 12 jobs + ceil(20 * 12 / 80) = 3 headroom.
    let d = decide(&spec(0, 40, 20), &p);
    assert_eq!(d.capacity, Some(15), "{d:?}");
    assert_eq!((d.target.demand, d.target.desired), (12, 15));
    // Capped at max.
    assert_eq!(decide(&spec(0, 10, 20), &p).capacity, Some(10));
}

#[test]
fn without_demand_an_idle_pool_at_min_zero_scales_to_zero_after_the_delay() {
    let mut p =
        ObservedPool { capacity: 2, instances: vec![inst(0, Idle, 299), inst(1, Idle, 301)], assigned_jobs: Some(0) };
    let d = decide(&spec(0, 10, 20), &p);
    assert_eq!(d.delete, ids(&[1]), "only the one idle past the scale-in delay");
    p.instances[0].in_state_for = Duration::from_secs(300);
    assert_eq!(decide(&spec(0, 10, 20), &p).target.size_after, 0);
}

#[test]
fn with_demand_a_finished_vm_is_reimaged_only_while_a_job_waits_for_it() {
    let mut p = pool(&[Busy, Recyclable]);
    p.assigned_jobs = Some(2); // one running, one waiting
    assert_eq!(decide(&spec(0, 10, 0), &p).reimage, ids(&[1]));
    p.assigned_jobs = Some(1); // nothing waits: delete rather than idle
    let d = decide(&spec(0, 10, 0), &p);
    assert_eq!(d.delete, ids(&[1]), "{d:?}");
    // Without a demand source the same pool keeps it as headroom.
    p.assigned_jobs = None;
    assert_eq!(decide(&spec(1, 10, 0), &p).reimage, ids(&[1]));
}

#[test]
fn busy_runners_count_even_when_the_statistics_lag() {
    let mut p = pool(&[Busy, Busy, Busy]);
    p.assigned_jobs = Some(1);
    assert_eq!(decide(&spec(0, 10, 0), &p).target.demand, 3);
}

// ---- the reserve (parked VMs) -----------------------------------------------

fn parking(min: u32, max: u32, pct: u8, parked: u32) -> PoolSpec {
    PoolSpec { parked, ..spec(min, max, pct) }
}

#[test]
fn an_empty_pool_creates_its_reserve_and_the_new_vms_are_told_to_park() {
    let s = parking(0, 10, 0, 3);
    let d = decide(&s, &ObservedPool { assigned_jobs: Some(0), ..pool(&[]) });
    assert_eq!(d.capacity, Some(3));
    assert_eq!((d.target.parked, d.target.parked_wanted), (0, 3));
    // They boot: each is told to park while the reserve is short.
    let booted = ObservedPool { assigned_jobs: Some(0), ..pool(&[AwaitingRegistration, AwaitingRegistration, Parked]) };
    assert_eq!(registration_answer(&s, &booted, &InstanceId::new("0")), RegistrationAnswer::Park);
    let full = ObservedPool { assigned_jobs: Some(0), ..pool(&[AwaitingRegistration, Parked, Parked, Parked]) };
    assert_eq!(registration_answer(&s, &full, &InstanceId::new("0")), RegistrationAnswer::Register, "reserve full");
    assert_eq!(decide(&s, &booted).capacity, None, "the unregistered ones make up the reserve");
}

#[test]
fn a_vm_the_free_target_needs_is_never_parked() {
    let s = parking(1, 10, 0, 3);
    let p = ObservedPool { assigned_jobs: Some(0), ..pool(&[AwaitingRegistration]) };
    assert_eq!(registration_answer(&s, &p, &InstanceId::new("0")), RegistrationAnswer::Register, "min 1 runs warm");
    let old = ObservedPool {
        instances: vec![ObservedInstance { latest_model: false, ..inst(0, AwaitingRegistration, 0) }, inst(1, Idle, 0)],
        ..p
    };
    assert_eq!(registration_answer(&s, &old, &InstanceId::new("0")), RegistrationAnswer::Register, "old model");
}

#[test]
fn vms_told_to_park_are_deallocated_at_once_and_replaced_if_that_never_happens() {
    let s = parking(0, 10, 0, 2);
    let p = ObservedPool {
        instances: vec![inst(0, Parking, 5), inst(1, Parking, 601)],
        capacity: 2,
        assigned_jobs: Some(0),
    };
    let d = decide(&s, &p);
    assert_eq!(d.park, ids(&[0]));
    assert_eq!(d.delete, ids(&[1]), "parking for longer than a registration may take: broken");
    assert_eq!(d.capacity, Some(2), "its replacement refills the reserve");
}

#[test]
fn demand_starts_parked_vms_before_creating_any_and_the_reserve_is_refilled() {
    let s = parking(0, 10, 0, 3);
    let p = ObservedPool { assigned_jobs: Some(2), ..pool(&[Parked, Parked, Parked]) };
    let d = decide(&s, &p);
    assert_eq!(d.start, ids(&[0, 1]));
    assert_eq!(d.capacity, Some(5), "two new VMs for the reserve, none for the jobs");
    let p = ObservedPool { assigned_jobs: Some(5), ..pool(&[Parked, Parked]) };
    let d = decide(&s, &p);
    assert_eq!(d.start, ids(&[0, 1]));
    assert_eq!(d.capacity, Some(8), "3 more for the jobs, 3 for the reserve");
}

#[test]
fn near_max_the_reserve_gives_way_to_running_vms() {
    let s = parking(0, 4, 0, 3);
    let p = ObservedPool { assigned_jobs: Some(3), ..pool(&[Parked, Parked, Parked]) };
    let d = decide(&s, &p);
    assert_eq!(d.start, ids(&[0, 1, 2]));
    assert_eq!(d.target.parked_wanted, 1);
    assert_eq!(d.capacity, Some(4), "one slot left for the reserve");
}

#[test]
fn a_surplus_parked_vm_goes_after_the_scale_in_delay() {
    let s = parking(0, 10, 0, 1);
    let p = ObservedPool {
        instances: vec![inst(0, Parked, 100), inst(1, Parked, 400), inst(2, Parked, 50)],
        capacity: 3,
        assigned_jobs: Some(0),
    };
    assert_eq!(decide(&s, &p).delete, ids(&[1]), "only the one past the delay");
}

#[test]
fn a_finished_or_surplus_idle_vm_is_reimaged_into_the_reserve_while_it_is_short() {
    let s = parking(0, 10, 0, 1);
    let p = ObservedPool { assigned_jobs: Some(0), ..pool(&[Recyclable]) };
    assert_eq!(decide(&s, &p).reimage, ids(&[0]), "its fresh boot is told to park");
    let p = ObservedPool { instances: vec![inst(0, Idle, 400)], capacity: 1, assigned_jobs: Some(0) };
    let d = decide(&s, &p);
    assert_eq!((d.reimage.clone(), d.delete.clone(), d.capacity), (ids(&[0]), vec![], None));
    let full =
        ObservedPool { instances: vec![inst(0, Idle, 400), inst(1, Parked, 0)], capacity: 2, assigned_jobs: Some(0) };
    assert_eq!(decide(&s, &full).delete, ids(&[0]), "reserve full: the surplus goes");
}

#[test]
fn a_reserve_short_by_one_takes_one_surplus_idle_vm_not_every_idle_one() {
    // Fault suite seed 173: each idle VM looked surplus in turn and all were reimaged.
    let s = parking(2, 10, 0, 1);
    for assigned_jobs in [None, Some(0)] {
        let p = ObservedPool {
            capacity: 3,
            instances: vec![inst(1, Idle, 360), inst(2, Idle, 360), inst(3, Idle, 360)],
            assigned_jobs,
        };
        let d = decide(&s, &p);
        assert_eq!(d.target.free_wanted, 2);
        assert_eq!(d.reimage.len(), 1, "{assigned_jobs:?}: {d:?}");
        assert!(d.delete.is_empty() && d.capacity.is_none(), "{d:?}");
    }
}

#[test]
fn vms_still_booting_do_not_stand_in_for_a_start() {
    // The reserve's replacements are being created when the next jobs come: they are a
    // whole boot away, a parked VM half of one.
    let s = parking(0, 12, 0, 2);
    let p = ObservedPool {
        instances: vec![
            inst(0, Provisioning, 10),
            inst(1, Provisioning, 10),
            inst(2, Parked, 600),
            inst(3, Parked, 600),
        ],
        capacity: 4,
        assigned_jobs: Some(2),
    };
    let d = decide(&s, &p);
    assert_eq!(d.start, ids(&[2, 3]), "{d:?}");
    assert_eq!(d.capacity, None, "nothing created: the booting pair is surplus now and will be told to park");
}
